"""The kernel's strict JSON (shared/strict_json.py, decision 0022): what it refuses,
what it must still accept, and a property test against Python's own parser (told to
keep every key) as the oracle for duplicate keys."""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import Litestar, post
from litestar.params import JSONBody
from litestar.testing import TestClient

from shared.request_body import StrictJsonRequest, is_json_media_type, msgspec_type
from shared.strict_json import MAX_DEPTH, MalformedJson, decode, integral_floats_as_ints


@pytest.mark.parametrize(
    "body",
    [
        b'{"sku": "A", "quantity": 1}',
        b'{\n  "lines": [\n    {"sku": "A", "quantity": 1},\n    {"sku": "A", "quantity": 2}\n  ]\n}',
        b'{"a": {"id": 1}, "b": {"id": 1}}',  # the same key in two objects
        b'{"a": ":x", "b": "\\":\\"", ":c": 1}',  # colons and quotes inside strings
        b'{"note": "\\\\u0000 is six characters here"}',
        b'{"name": "caf\xc3\xa9 \xf0\x9f\x93\xa6", "escaped": "\\u00e9\\ud83d\\udce6"}',
        b'{"text": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
        b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
        b'{"lines": [' + b",".join([b'{"sku": "A", "quantity": 1}'] * 5000) + b"]}",
        b"[]",
        b"{}",
        b"1",
        b'"x"',
        b"null",
        b' \t\r\n{"a": 1} \n',
    ],
)
def test_strict_json_still_accepts(body: bytes) -> None:
    assert decode(body) == json.loads(body)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"quantity": 1, "quantity": 999999}', "same key"),
        (b'{"quantity": 1 , "quantity" : 999999}', "same key"),
        (b'{"lines": [{"sku": "A", "sku": "B"}]}', "same key"),
        (b'{"ab": 1, "a\\u0062": 2}', "same key"),  # one key, spelled twice
        (b'{"a\\"": 1, "a\\"": 2}', "same key"),
        (b'{"": 1, "": 2}', "same key"),
        (b'{"a": ":x", "a": 1}', "same key"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "deeper"),
        (b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}", "deeper"),
        (b"[" * 100_000, "deeper"),
        (b'{"sku": "\xff\xfe"}', "not UTF-8"),
        (b'{"sku": "\xc0\xaf"}', "not UTF-8"),  # overlong '/'
        (b'{"sku": "\xed\xa0\x80"}', "not UTF-8"),  # an encoded surrogate
        (b'{"sku": "\\ud800"}', "not JSON"),  # a lone surrogate
        (b'\xef\xbb\xbf{"sku": "A"}', "not JSON"),  # a byte order mark
        (b'{"quantity": NaN}', "not JSON"),
        (b'{"quantity": Infinity}', "not JSON"),
        (b'{"quantity": 1e400}', "not JSON"),
        (b'{"quantity": 1,}', "not JSON"),
        (b'{"quantity": 1} // note', "not JSON"),
        (b'{"quantity": 1}{}', "not JSON"),
        (b"sku=A&quantity=1", "not JSON"),
        (b"", "not JSON"),
        (b'{"sku": "A\\u0000"}', r"U\+0000"),
        (b'{"A\\u0000": 1}', r"U\+0000"),
    ],
)
def test_strict_json_refuses(body: bytes, why: str) -> None:
    with pytest.raises(MalformedJson, match=why):
        decode(body)


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/json", True),
        ("Application/JSON", True),
        ("application/json; charset=utf-8", True),
        ('application/json;charset="UTF-8"', True),
        ("application/json; charset=iso-8859-1", False),
        ("application/merge-patch+json", False),
        ("application/jsonx", False),
        ("text/json", False),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("", False),
        (None, False),
    ],
)
def test_only_application_json_in_utf_8_is_json(content_type: str | None, accepted: bool) -> None:
    assert is_json_media_type(content_type) is accepted
    assert is_json_media_type(content_type.encode() if content_type else None) is accepted


def test_integral_floats_become_ints_and_nothing_else_changes() -> None:
    value = decode(b'{"a": 4.0, "b": [1e3, 4.5, "4.0", true], "c": {"d": -0.0}}')
    converted = integral_floats_as_ints(value)
    assert converted == {"a": 4, "b": [1000, 4.5, "4.0", True], "c": {"d": 0}}
    assert [type(x) for x in converted["b"]] == [int, float, str, bool]


# Keys from a small alphabet so that objects often repeat one; escapes and whitespace
# so that both the counting shortcut and the exact count are exercised.
_KEYS = st.sampled_from(["a", "b", ":", 'q"', "\\", "é", "a b"])
_SCALARS = st.one_of(st.integers(-5, 5), st.sampled_from(["x", ":", '":', "\\", "é"]), st.none())
_SPACE = st.sampled_from(["", " ", "\n  "])


@st.composite
def _documents(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON text whose objects may name a key more than once."""
    space = draw(_SPACE)
    if depth > 3 or draw(st.integers(0, 2)) == 0:
        return json.dumps(draw(_SCALARS), ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        items = draw(st.lists(_documents(depth + 1), max_size=3))
        return "[" + f",{space}".join(items) + "]"
    members = draw(st.lists(st.tuples(_KEYS, _documents(depth + 1)), max_size=4))
    ascii_only = draw(st.booleans())
    return (
        "{"
        + f",{space}".join(
            f"{json.dumps(key, ensure_ascii=ascii_only)}{space}:{space}{value}"
            for key, value in members
        )
        + "}"
    )


def _names_a_key_twice(text: str) -> bool:
    twice = False

    def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal twice
        twice |= len({key for key, _ in members}) != len(members)
        return dict(members)

    json.loads(text, object_pairs_hook=pairs)
    return twice


@settings(max_examples=400, deadline=None)
@given(_documents())
def test_duplicate_keys_are_found_exactly_as_pythons_parser_sees_them(text: str) -> None:
    body = text.encode()
    if _names_a_key_twice(text):
        with pytest.raises(MalformedJson, match="same key"):
            decode(body)
    else:
        assert decode(body) == json.loads(text)


class _Line(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    quantity: int


_AtMostTwo = Annotated[list[_Line], msgspec.Meta(max_length=2)]


@post("/lines", status_code=200)
async def _lines(data: JSONBody[_AtMostTwo]) -> int:
    return sum(line.quantity for line in data)


def test_a_body_type_keeps_its_own_constraints_once_litestars_marker_is_dropped() -> None:
    """``msgspec_type`` drops ``JSONBody``'s ``Body`` marker (costly to hash on every
    request) and keeps msgspec's own ``Meta``: the body's length limit and strict
    field types still hold."""
    assert msgspec_type(JSONBody[_Line]) is _Line
    app = Litestar([_lines], request_class=StrictJsonRequest)
    with TestClient(app) as client:
        two = [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}]
        assert client.post("/lines", json=two).json() == 3
        assert client.post("/lines", json=[*two, two[0]]).status_code == 400
        assert client.post("/lines", json=[{"sku": "A", "quantity": "1"}]).status_code == 400
