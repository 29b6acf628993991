"""Relay-style connections over the process APIs' keyset pages.

The process APIs hand out one cursor per page (after its last row), so only the last
edge of a page carries a cursor; ``pageInfo.endCursor`` is that cursor and is what a
client passes as ``after``. ``totalCount`` is the process API's count for the filter
(null when the process API does not count that list)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry

T = TypeVar("T")
D = TypeVar("D")

MAX_PAGE_SIZE = 100


def page_size(first: int) -> int:
    """``first`` clamped to 1..100 (a bigger page is not refused, it is cut)."""
    return min(max(first, 1), MAX_PAGE_SIZE)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str | None = strawberry.field(
        description="Only the page's last edge has one (keyset pages): pageInfo.endCursor."
    )
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int | None

    @classmethod
    def of(
        cls,
        docs: Sequence[D],
        convert: Callable[[D], T],
        next_cursor: str | None,
        total_count: int | None,
    ) -> Connection[T]:
        nodes = [convert(doc) for doc in docs]
        last = len(nodes) - 1
        return cls(
            edges=[
                Edge(cursor=next_cursor if i == last else None, node=node)
                for i, node in enumerate(nodes)
            ],
            page_info=PageInfo(has_next_page=next_cursor is not None, end_cursor=next_cursor),
            total_count=total_count,
        )
