"""Strict JSON for request bodies (ARCHITECTURE.md section 4, decision 0022), free of
any framework so the allocation fast path can call it too.

``decode`` accepts what RFC 8259 and I-JSON (RFC 7493) call interoperable JSON and
nothing else: UTF-8 only (no byte order mark, no lone surrogate), no NaN or Infinity,
no object naming a key twice, no string holding U+0000 (PostgreSQL text cannot store
it), and at most ``MAX_DEPTH`` nested arrays and objects. msgspec does the parsing;
what it lets through (duplicate keys, which it resolves silently to the last one) is
proved absent by counting, in C, the keys of the body and of its re-encoding: a
dropped duplicate leaves the re-encoding with fewer keys.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

MAX_DEPTH = 64  # Tally's deepest contract body is 4; 64 leaves room and stops stack games

_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
# A JSON string (unrolled: no backtracking) and, when it is an object's key, its colon.
_STRING_OR_KEY = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?')
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPENERS_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


class MalformedJson(ValueError):
    """The body is not strict JSON; the message says why, for the problem's detail."""


def decode(body: bytes) -> Any:
    """The JSON value of ``body``, or ``MalformedJson``."""
    if len(body) > 2 * MAX_DEPTH and _deeper_than(body, MAX_DEPTH):
        raise MalformedJson(f"The JSON body nests arrays and objects deeper than {MAX_DEPTH}.")
    try:
        value = _DECODER.decode(body)
    except UnicodeDecodeError as exc:
        raise MalformedJson("The body is not UTF-8.") from exc
    except RecursionError as exc:  # unreachable behind the depth check; kept as a guard
        raise MalformedJson("The JSON body nests too deeply.") from exc
    except msgspec.DecodeError as exc:  # ValidationError included: a number out of range
        raise MalformedJson(f"The body is not JSON: {exc}.") from exc
    if not isinstance(value, dict | list):
        return value
    escaped = b"\\" in body
    if escaped:
        duplicated = _key_count(body) != _key_count(_ENCODER.encode(value))
    else:
        # No escapes: every quote delimits a string, so once the whitespace between
        # tokens is gone a key is exactly a quote followed by a colon (a string opening
        # with a colon counts in both bodies alike).
        compact = msgspec.json.format(body, indent=-1)
        duplicated = compact.count(b'":') != _ENCODER.encode(value).count(b'":')
    if duplicated:
        raise MalformedJson("A JSON object in the body names the same key more than once.")
    if escaped and b"\\u0000" in body and _holds_nul(value):
        raise MalformedJson("A JSON string in the body holds U+0000.")
    return value


def _key_count(document: bytes) -> int:
    colons = _STRING_OR_KEY.findall(document)
    return len(colons) - colons.count(b"")


def _deeper_than(body: bytes, limit: int) -> bool:
    """Whether the arrays and objects outside strings nest deeper than ``limit``: each
    pass removes the innermost pairs, so a balanced body is empty after depth passes.
    Counting the brackets first spares the common body the stripping."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    # Without escapes every quote delimits a string: strings are the odd pieces.
    escaped = b"\\" in body
    outside_strings = _STRING.sub(b"", body) if escaped else b"".join(body.split(b'"')[::2])
    brackets = outside_strings.translate(_OPENERS_AS_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def _holds_nul(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def integral_floats_as_ints(value: Any) -> Any:
    """``value`` with every float that has no fractional part as an int. JSON has one
    number type: ``4.0`` is the integer 4 (as JSON Schema's ``integer`` says), while
    ``"4"`` stays a string. Floats are ints too for a float field (msgspec takes ints)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral_floats_as_ints(item) for item in value]
    return value
