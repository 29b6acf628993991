"""Persisted queries, Apollo's automatic persisted queries (APQ) protocol, and the
registry of operations the portal accepts when only registered operations may run.

A request names its query by ``extensions.persistedQuery = {version: 1, sha256Hash}``
(the lowercase hex sha256 of the query text):
- hash only, known: the stored query runs; unknown: ``PersistedQueryNotFound``
  (code PERSISTED_QUERY_NOT_FOUND), and the client sends query and hash together;
- query and hash: the hash must be the query's (PERSISTED_QUERY_HASH_MISMATCH); the
  query runs and, once it parses and validates, is stored under its hash.
With ``registered_only`` (production by default) nothing is stored: only the
registry's operations run, named by hash or sent as their exact text (or the same
document formatted differently); anything else is OPERATION_NOT_REGISTERED.

The registry is the folder of example operations (contracts/graphql/examples/*.graphql,
one document per file; the sha256 of the file's text is its id)."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, OperationDefinitionNode, parse, print_ast
from strawberry.extensions import SchemaExtension

from experience_apis.portal.upstream import PortalError

if TYPE_CHECKING:
    from experience_apis.portal.limits.guard import Guard

log = logging.getLogger("tally.portal")

APQ_CACHE_SIZE = 1_000  # queries kept per process (a client re-sends an evicted one)
APQ_CACHE_CHARS = 4 * 1024 * 1024  # and at most this much query text in all
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_of(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


@lru_cache(maxsize=512)
def canonical(query: str) -> str | None:
    """The document printed back from its syntax tree (whitespace, commas and comments
    do not count), or None when it does not parse."""
    try:
        return print_ast(parse(query, no_location=True))
    except GraphQLError:
        return None


@dataclass(frozen=True)
class Operation:
    """One registered operation: its file's stem, its first operation's name, its text."""

    file: str
    name: str
    query: str
    variables: str | None = None

    @property
    def sha256(self) -> str:
        return sha256_of(self.query)


@dataclass(frozen=True)
class OperationRegistry:
    operations: tuple[Operation, ...] = ()
    by_hash: Mapping[str, str] = field(default_factory=dict)
    canonical_forms: frozenset[str] = frozenset()

    @classmethod
    def load(cls, folder: Path) -> OperationRegistry:
        if not folder.is_dir():
            return cls()
        operations = []
        for path in sorted(folder.glob("*.graphql")):
            query = path.read_text(encoding="utf-8")
            variables_file = path.with_suffix(".json")
            variables = (
                variables_file.read_text(encoding="utf-8") if variables_file.is_file() else None
            )
            operations.append(
                Operation(path.stem, _operation_name(query, path.stem), query, variables)
            )
        forms = {form for op in operations if (form := canonical(op.query)) is not None}
        return cls(
            operations=tuple(operations),
            by_hash={op.sha256: op.query for op in operations},
            canonical_forms=frozenset(forms),
        )

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations)

    def lookup(self, sha256: str) -> str | None:
        return self.by_hash.get(sha256)

    def accepts(self, query: str) -> bool:
        if sha256_of(query) in self.by_hash:
            return True
        form = canonical(query)
        return form is not None and form in self.canonical_forms


def _operation_name(query: str, default: str) -> str:
    try:
        document = parse(query, no_location=True)
    except GraphQLError:
        return default
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and definition.name:
            return definition.name.value
    return default


class ApqStore:
    """Queries clients registered by hash (APQ), least recently used out first."""

    def __init__(self, size: int = APQ_CACHE_SIZE, chars: int = APQ_CACHE_CHARS) -> None:
        self.size = size
        self.chars = chars
        self._held = 0
        self._queries: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha256: str) -> str | None:
        with self._lock:
            query = self._queries.get(sha256)
            if query is not None:
                self._queries.move_to_end(sha256)
            return query

    def put(self, sha256: str, query: str) -> None:
        with self._lock:
            if sha256 in self._queries:
                self._queries.move_to_end(sha256)
                return
            self._queries[sha256] = query
            self._held += len(query)
            while len(self._queries) > self.size or self._held > self.chars:
                _, evicted = self._queries.popitem(last=False)
                self._held -= len(evicted)

    def __len__(self) -> int:
        return len(self._queries)


def not_found() -> PortalError:
    # Apollo's clients look for this exact message (and the code) to send the query.
    return PortalError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")


def not_registered() -> PortalError:
    return PortalError(
        "Only registered operations run here: send the sha256Hash of an operation of "
        "contracts/graphql/examples (extensions.persistedQuery), or its exact text.",
        "OPERATION_NOT_REGISTERED",
    )


def _requested_hash(extensions: dict[str, Any] | None) -> str | None:
    """The sha256Hash of ``extensions.persistedQuery``; None when there is none."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if (
        not isinstance(persisted, dict)
        or persisted.get("version") != 1
        or not isinstance(persisted.get("sha256Hash"), str)
        or not _SHA256.match(persisted["sha256Hash"])
    ):
        raise PortalError(
            "extensions.persistedQuery must be {version: 1, sha256Hash: <64 lowercase hex>}.",
            "PERSISTED_QUERY_INVALID",
        )
    return str(persisted["sha256Hash"])


class PersistedQueries(SchemaExtension):
    """Resolves the query before it is parsed (first in the list)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._store: tuple[str, str] | None = None

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        wanted = _requested_hash(context.operation_extensions)
        query = context.query
        guard = self.guard
        if wanted is None:
            if guard.registered_only and query is not None and not guard.registry.accepts(query):
                raise not_registered()
        elif query is None:
            stored = guard.registry.lookup(wanted)
            if stored is None and not guard.registered_only:
                stored = guard.apq.get(wanted)
            if stored is None:
                raise not_found()
            context.query = stored
        elif sha256_of(query) != wanted:
            raise PortalError("provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH")
        elif guard.registered_only:
            if guard.registry.lookup(wanted) is None:
                raise not_registered()
        elif guard.registry.lookup(wanted) is None:
            self._store = (wanted, query)
        yield

    def on_validate(self) -> Iterator[None]:
        yield
        # Only a query that parsed and validated is kept.
        if self._store is not None and not self.execution_context.pre_execution_errors:
            self.guard.apq.put(*self._store)
            log.info("persisted query %s registered", self._store[0])
