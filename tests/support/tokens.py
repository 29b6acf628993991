"""A throwaway signing key and token minting for in-process service tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from shared.auth.verifier import StaticKeys

ISSUER = "http://127.0.0.1:8000"


class TestIssuer:
    __test__ = False  # not a test class

    def __init__(self, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.key = ECKey.generate_key(
            "P-256", parameters={"kid": "test-1", "alg": "ES256", "use": "sig"}, private=True
        )

    def key_source(self) -> StaticKeys:
        return StaticKeys({"keys": [self.key.as_dict(private=False)]})

    def token(
        self,
        scopes: str,
        *,
        audience: str | list[str],
        client_id: str = "test-client",
        customer_id: str | None = None,
        expires_in: int = 600,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client_id,
            "client_id": client_id,
            "aud": audience,
            "scope": scopes,
            "iat": now,
            "exp": now + expires_in,
            "jti": uuid.uuid4().hex,
        }
        if customer_id:
            payload["customer_id"] = customer_id
        payload.update(claims)
        return jwt.encode(
            header or {"alg": "ES256", "kid": "test-1", "typ": "at+jwt"}, payload, self.key
        )
