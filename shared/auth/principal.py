from __future__ import annotations

import msgspec


class Principal(msgspec.Struct, frozen=True):
    """Who is calling, as the verified access token says."""

    client_id: str
    scopes: frozenset[str]
    customer_id: str | None
    token: str
    jti: str | None = None
    expires_at: int = 0
    tier: str | None = None

    def has_scope(self, scope: str) -> bool:
        # The superscope is staff's: a client bound to a customer never holds it (the
        # registry refuses it), and a token that says otherwise gets no more than it
        # names (ADR 0021).
        if scope in self.scopes:
            return True
        return self.customer_id is None and "admin" in self.scopes

    def may_see_customer(self, customer_id: str | None) -> bool:
        """A client bound to one customer sees that customer only."""
        return self.customer_id is None or self.customer_id == customer_id
