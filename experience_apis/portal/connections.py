"""Relay-style connections over the process APIs' keyset pages.

The process APIs hand out one cursor per page (after its last row). The portal gives
every edge a cursor of its own: the process API's cursor the edge's page started from
and how many rows of that page come before the edge. ``after`` an edge's cursor asks
the process API for that page again, one row per skipped row more (its limit is 500,
so at most 99 + 100), and drops the skipped rows. The page's last edge carries the
process API's next cursor with nothing to skip, so paging by ``pageInfo.endCursor``
costs nothing extra. ``totalCount`` is the process API's count for the filter (null
when the process API does not count that list)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec
import strawberry

from experience_apis.portal.upstream import decode_items
from experience_apis.portal.wire import PageDoc

T = TypeVar("T")
D = TypeVar("D")

MAX_PAGE_SIZE = 100
_TAG = "p1:"  # the portal's own cursors; anything else is taken as a process API cursor


def page_size(first: int) -> int:
    """``first`` clamped to 1..100 (a bigger page is not refused, it is cut)."""
    return min(max(first, 1), MAX_PAGE_SIZE)


@dataclass(frozen=True)
class Start:
    """Where a page starts: after ``skip`` rows of the process API's page at ``cursor``."""

    cursor: str | None = None
    skip: int = 0

    @classmethod
    def after(cls, cursor: str | None) -> Start:
        """A cursor the portal issued; any other string is passed on as the process
        API's own (an endCursor of an earlier portal release), which pages from the top
        when it names nothing (the house rule: paging never fails on a cursor)."""
        if not cursor:
            return cls()
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return cls(cursor)
        if not text.startswith(_TAG):
            return cls(cursor)
        try:
            upstream, skip = msgspec.json.decode(text[len(_TAG) :], type=tuple[str | None, int])
        except msgspec.DecodeError:
            return cls()
        return cls(upstream, skip) if 0 <= skip < MAX_PAGE_SIZE else cls(upstream)

    def limit(self, first: int) -> int:
        """Rows to ask the process API for: the skipped ones and a page."""
        return self.skip + page_size(first)

    def encode(self) -> str:
        text = _TAG + msgspec.json.encode([self.cursor, self.skip]).decode()
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Window(Generic[D]):
    """The rows of one connection page, each with the cursor to resume after it."""

    docs: list[D]
    cursors: list[str]
    has_next_page: bool
    total_count: int | None


def window(page: PageDoc, start: Start, first: int, shape: type[D], service: str) -> Window[D]:
    """The page asked for out of the process API's answer to ``start.limit(first)``."""
    size = page_size(first)
    raw = page.items[start.skip : start.skip + size]
    taken = start.skip + len(raw)
    more_here = taken < len(page.items)
    cursors = [Start(start.cursor, start.skip + i + 1).encode() for i in range(len(raw))]
    if raw and not more_here and page.next_cursor is not None:
        cursors[-1] = Start(page.next_cursor).encode()
    docs = decode_items(PageDoc(items=raw), shape, service)
    return Window(docs, cursors, more_here or page.next_cursor is not None, page.total_count)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None = strawberry.field(
        description="The last edge's cursor: pass it as `after` for the next page."
    )


@strawberry.type
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Pass it as `after` to go on after this edge.")
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int | None

    @classmethod
    def of(cls, found: Window[D], convert: Callable[[D], T]) -> Connection[T]:
        edges = [
            Edge(cursor=cursor, node=convert(doc))
            for doc, cursor in zip(found.docs, found.cursors, strict=True)
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=found.has_next_page,
                end_cursor=found.cursors[-1] if found.cursors else None,
            ),
            total_count=found.total_count,
        )
