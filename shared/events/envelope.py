"""CloudEvents 1.0 envelope with correlation, causation and the aggregate's sequence."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import uuid_utils

from shared.correlation import correlation_id, traceparent

P = TypeVar("P", bound=msgspec.Struct)


class Event(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    source: str
    type: str
    subject: str
    time: datetime
    sequence: int
    data: msgspec.Raw
    specversion: str = "1.0"
    datacontenttype: str = "application/json"
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: str | None = None

    def payload(self, cls: builtins.type[P]) -> P:
        return msgspec.json.decode(self.data, type=cls)


def new_event(
    *,
    source: str,
    type_: str,
    subject: str,
    sequence: int,
    payload: msgspec.Struct,
    causation: Event | None = None,
) -> Event:
    return Event(
        id=str(uuid_utils.uuid7()),
        source=source,
        type=type_,
        subject=subject,
        time=datetime.now(UTC),
        sequence=sequence,
        data=msgspec.Raw(msgspec.json.encode(payload)),
        correlationid=(causation.correlationid if causation else None) or correlation_id.get(),
        causationid=causation.id if causation else None,
        traceparent=traceparent.get(),
    )


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(raw: bytes | str) -> Event:
    return _decoder.decode(raw)


def as_dict(event: Event) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.json.decode(encode_event(event))
    return result
