"""The gateway's signing keys: ES256 (EC P-256), generated on first start and kept in
``<data_dir>/keys/signing-keys.json`` (mode 0600).

The file holds every key, the ``kid`` of the one that signs, and per key when it was
created and, once rotated out, until when it still verifies::

    {"active_kid": "...", "keys": [JWK, ...],
     "meta": {"<kid>": {"created_at": 1700000000, "verify_until": 1700001000}}}

``tally keys rotate`` adds a key and makes it active; the previous one stays in the
JWKS until every token it signed has expired (max token lifetime + a margin larger
than any verifier's leeway), then ``tally keys prune`` drops it. Writers take a lock
file and replace the file atomically; a running gateway notices the change by its
stat signature and reloads (see docs/decisions/0012).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeySet

log = logging.getLogger("tally.gateway.keys")

ALGORITHM = "ES256"
DEFAULT_TOKEN_LIFETIME_SECONDS = 15 * 60
# A rotated-out key verifies this long after the last token it can have signed expired:
# more than the verifiers' leeway (30 s) plus the moment a replica takes to notice.
RETIRE_MARGIN_SECONDS = 90


def token_lifetime_seconds() -> int:
    """``TALLY_TOKEN_LIFETIME_SECONDS`` (60 .. 86400), default 900. The CLI reads the
    same variable, so rotation keeps old keys long enough for the gateway's tokens."""
    raw = os.environ.get("TALLY_TOKEN_LIFETIME_SECONDS") or str(DEFAULT_TOKEN_LIFETIME_SECONDS)
    if not raw.isdigit() or not 60 <= int(raw) <= 86_400:
        raise ValueError(f"TALLY_TOKEN_LIFETIME_SECONDS must be 60..86400 seconds, not {raw!r}")
    return int(raw)


def _new_key() -> ECKey:
    return ECKey.generate_key(
        "P-256", parameters={"alg": ALGORITHM, "use": "sig"}, private=True, auto_kid=True
    )


def _write_new(path: Path, content: str) -> bool:
    """Creates ``path`` atomically with mode 0600; False when it already exists."""
    _prepare_folder(path)
    tmp = _temp_file(path, content)
    try:
        os.link(tmp, path)  # fails if another process created the file first
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _replace(path: Path, content: str) -> None:
    tmp = _temp_file(path, content)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _prepare_folder(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)


def _temp_file(path: Path, content: str) -> Path:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


@dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    status: str  # active | verifying | retired
    created_at: int | None
    verify_until: int | None


@dataclass(frozen=True, slots=True)
class _Loaded:
    keys: tuple[ECKey, ...]  # every key that still verifies, the active one included
    active: ECKey
    document: dict[str, Any]
    signature: tuple[int, int, int]
    version: int


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._state: _Loaded | None = None
        self.load()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> KeyStore:
        return cls(data_dir / "keys" / "signing-keys.json")

    # -- reading -----------------------------------------------------------------------
    def _signature(self) -> tuple[int, int, int]:
        st = self.path.stat()
        return st.st_ino, st.st_mtime_ns, st.st_size

    def load(self) -> None:
        if not self.path.exists():
            key = _new_key()
            now = int(time.time())
            document = {
                "active_kid": key.kid,
                "keys": [key.as_dict(private=True)],
                "meta": {key.kid: {"created_at": now, "verify_until": None}},
            }
            if _write_new(self.path, json.dumps(document, indent=2)):
                log.info("generated signing key %s in %s", key.kid, self.path)
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); set to 0600", self.path, mode)
            os.chmod(self.path, 0o600)
        with self._lock:
            signature = self._signature()
            document = json.loads(self.path.read_text())
            version = self._state.version + 1 if self._state else 1
            self._state = _parse(self.path, document, signature, version)

    def reload_if_changed(self) -> bool:
        """Re-reads the file when another process replaced it (a stat, no read, when
        nothing changed). True when it was reloaded."""
        try:
            changed = self._signature() != self._loaded.signature
        except FileNotFoundError:
            return False
        if changed:
            self.load()
            log.info("signing keys reloaded; active key %s", self.active.kid)
        return changed

    @property
    def _loaded(self) -> _Loaded:
        assert self._state is not None
        return self._state

    @property
    def version(self) -> int:
        return self._loaded.version

    @property
    def active(self) -> ECKey:
        return self._loaded.active

    def signing_key_set(self) -> KeySet:
        """Only the active key: joserfc picks it and writes its ``kid`` into the header."""
        return KeySet([self.active])

    def _verifying(self) -> list[ECKey]:
        """Every key but those rotated out whose tokens have all expired."""
        now = int(time.time())
        meta = self._loaded.document.get("meta", {})
        return [
            key
            for key in self._loaded.keys
            if (until := (meta.get(key.kid) or {}).get("verify_until")) is None or until > now
        ]

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self._verifying()]}

    def public_key_set(self) -> KeySet:
        return KeySet([ECKey.import_key(key.as_dict(private=False)) for key in self._verifying()])

    def describe(self) -> list[KeyInfo]:
        now = int(time.time())
        loaded = self._loaded
        meta = loaded.document.get("meta", {})
        infos = []
        for key in loaded.keys:
            info = meta.get(key.kid) or {}
            until = info.get("verify_until")
            if key.kid == loaded.active.kid:
                status = "active"
            elif until is None or until > now:
                status = "verifying"
            else:
                status = "retired"
            infos.append(KeyInfo(str(key.kid), status, info.get("created_at"), until))
        return infos

    # -- writing (the CLI; any process) ---------------------------------------------------
    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write under a lock file; yields the document to change."""
        _prepare_folder(self.path)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.load()
            document = json.loads(json.dumps(self._loaded.document))
            yield document
            _parse(self.path, document, (0, 0, 0), 0)  # refuse to write a broken file
            _replace(self.path, json.dumps(document, indent=2))
            self.load()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def rotate(self, max_token_lifetime: int | None = None) -> str:
        """Adds a key that signs from now on; the previous active key keeps verifying
        until every token it signed has expired. Returns the new kid."""
        lifetime = max_token_lifetime or token_lifetime_seconds()
        key = _new_key()
        now = int(time.time())
        with self._exclusive() as document:
            meta = document.setdefault("meta", {})
            previous = document["active_kid"]
            meta.setdefault(previous, {})["verify_until"] = now + lifetime + RETIRE_MARGIN_SECONDS
            document["keys"].append(key.as_dict(private=True))
            meta[key.kid] = {"created_at": now, "verify_until": None}
            document["active_kid"] = key.kid
        log.info(
            "rotated signing key: %s signs, %s verifies until its tokens expire", key.kid, previous
        )
        return str(key.kid)

    def prune(self) -> list[str]:
        """Drops keys that no longer verify anything; returns their kids."""
        now = int(time.time())
        removed: list[str] = []
        with self._exclusive() as document:
            meta = document.setdefault("meta", {})
            kept = []
            for data in document["keys"]:
                until = (meta.get(data["kid"]) or {}).get("verify_until")
                if data["kid"] != document["active_kid"] and until is not None and until <= now:
                    removed.append(data["kid"])
                    meta.pop(data["kid"], None)
                else:
                    kept.append(data)
            document["keys"] = kept
        return removed


def _parse(
    path: Path, document: dict[str, Any], signature: tuple[int, int, int], version: int
) -> _Loaded:
    keys: list[ECKey] = []
    for data in document["keys"]:
        key = ECKey.import_key(data)
        if not key.is_private:
            raise ValueError(f"{path}: key {key.kid} has no private part")
        keys.append(key)
    if not keys:
        raise ValueError(f"{path}: no signing key")
    active_kid = document.get("active_kid") or keys[0].kid
    active = next((key for key in keys if key.kid == active_kid), None)
    if active is None:
        raise ValueError(f"{path}: active_kid {active_kid} is not among the keys")
    return _Loaded(tuple(keys), active, document, signature, version)


class LocalKeySource:
    """The gateway verifies tokens against its own key set, without HTTP to itself.
    An unknown kid (a rotation by the CLI or another replica) costs one stat of the
    key file; the file is read again only when it changed."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self._version = store.version
        self._keys = store.public_key_set()

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        if refresh:
            self.store.reload_if_changed()
        if self.store.version != self._version:
            self._version = self.store.version
            self._keys = self.store.public_key_set()
        return self._keys
