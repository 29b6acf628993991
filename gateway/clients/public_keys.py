"""Public keys a ``private_key_jwt`` client registers (RFC 7523): a JWKS, one JWK or a
PEM public key. Only asymmetric public keys are accepted: a private part or a shared
(``oct``) key is refused, so the registry never holds anything that could sign."""

from __future__ import annotations

import json
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

ASYMMETRIC_TYPES = ("EC", "RSA", "OKP")
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def parse_client_jwks(text: str) -> dict[str, Any]:
    """A JWKS (``{"keys": [...]}``), a single JWK, or a PEM public key -> a JWKS dict.
    Raises ValueError with a message fit for the operator."""
    document = _as_jwks(text.strip())
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWKS is {"keys": [...]}')
    keys = document["keys"]
    if not keys:
        raise ValueError("the JWKS holds no key")
    for jwk in keys:
        if not isinstance(jwk, dict) or jwk.get("kty") not in ASYMMETRIC_TYPES:
            raise ValueError(f"only {', '.join(ASYMMETRIC_TYPES)} public keys are accepted")
        if any(member in jwk for member in PRIVATE_MEMBERS):
            raise ValueError("the JWKS holds a private key: register the public keys only")
    try:
        key_set = KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"the JWKS is not valid: {exc}") from exc
    return {"keys": [key.as_dict(private=False) for key in key_set.keys]}


def _as_jwks(stripped: str) -> Any:
    """The text read as a JWKS: a PEM key or a single JWK wrapped in one, else the JSON."""
    if stripped.startswith("-----BEGIN"):
        if "PRIVATE KEY" in stripped:
            raise ValueError("that is a private key: register the public key only")
        return {"keys": [_import_pem(stripped.encode())]}
    try:
        document = json.loads(stripped)
    except ValueError as exc:
        raise ValueError("the keys must be a JWKS, a JWK (JSON) or a PEM public key") from exc
    if isinstance(document, dict) and "kty" in document:
        return {"keys": [document]}
    return document


def _import_pem(pem: bytes) -> dict[str, Any]:
    for key_class in (ECKey, RSAKey, OKPKey):
        try:
            return dict(key_class.import_key(pem).as_dict(private=False))
        except (JoseError, ValueError, TypeError):
            continue
    raise ValueError("not a usable PEM public key (EC, RSA or Ed25519)")
