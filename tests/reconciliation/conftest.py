from __future__ import annotations

from tests.availability.conftest import _embedded_defaults, client, settings

__all__ = ["_embedded_defaults", "client", "settings"]
