"""Keyset pages with one cursor encoding for every list (section 4: cursor-paginated).

A cursor is the unpadded base64url text of the last key of a page: the key itself when
it is one string, a compact JSON array of its parts when it has several. Clients treat
it as opaque; a cursor we did not issue is never an error (house rule), it is a
position in the key order or the top, as each list says.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar, overload

import msgspec

from shared.models import Page

T = TypeVar("T")

# What a page is ordered by: one string, or the parts of a compound key.
Key = str | tuple[str, ...]
# Where a cursor we did not issue starts a compound-key list.
Foreign = Literal["position", "top"]


def encode_cursor(key: Key) -> str:
    text = key if isinstance(key, str) else msgspec.json.encode(list(key)).decode()
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key to continue after. A cursor we did not issue is not an error: it is
    just a position in the key order, so paging can never fail on it."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return cursor


@overload
def decode_key(
    cursor: str | None, parts: Literal[2], *, foreign: Foreign = "position"
) -> tuple[str, str] | None: ...
@overload
def decode_key(
    cursor: str | None, parts: Literal[3], *, foreign: Foreign = "position"
) -> tuple[str, str, str] | None: ...
def decode_key(
    cursor: str | None, parts: int, *, foreign: Foreign = "position"
) -> tuple[str, ...] | None:
    """The compound key to continue after (None: from the top). A cursor we did not
    issue is, as the list chooses, a position in the key order (its text is the first
    part, the others empty) or the top."""
    text = decode_cursor(cursor)
    if text is None:
        return None
    try:
        key = msgspec.json.decode(text, type=list[str])
    except msgspec.DecodeError:
        key = []
    if len(key) == parts:
        return tuple(key)
    return (text, *[""] * (parts - 1)) if foreign == "position" else None


def keyset_page(found: Sequence[T], limit: int, key: Callable[[T], Key]) -> Page[T]:
    """The first ``limit`` of ``found`` (rows read after the cursor in key order, one
    more than a page when there are more), with the cursor after the last of them."""
    page = list(found[:limit])
    return Page(page, encode_cursor(key(page[-1])) if len(found) > limit else None)
