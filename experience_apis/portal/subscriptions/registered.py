"""Registered-only mode (production's default) for subscriptions too.

Over HTTP the persisted-queries extension refuses an operation that is not one of the
registered examples. On a subscription stream strawberry does not report an error an
extension raises before execution: the subscriber would see only ``complete``. So the
transport refuses it at ``subscribe``, with the same error the HTTP path answers, as a
graphql-transport-ws ``error`` message for that operation id."""

from __future__ import annotations

from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage

from experience_apis.portal.limits.guard import current_guard
from experience_apis.portal.limits.persisted import not_registered


class RegisteredOnlyTransport(BaseGraphQLTransportWSHandler[Any, Any]):
    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        guard = current_guard()
        query = message["payload"].get("query")
        if (
            self.connection_acknowledged
            and guard.registered_only
            and isinstance(query, str)
            and not guard.registry.accepts(query)
        ):
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [not_registered().formatted]}
            )
            return
        await super().handle_subscribe(message)
