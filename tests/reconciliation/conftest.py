from tests.availability.conftest import _embedded_defaults, client, issuer, settings

__all__ = ["_embedded_defaults", "client", "issuer", "settings"]
