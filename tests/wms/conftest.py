from __future__ import annotations

from tests.support.service import service_fixtures

_embedded_defaults, settings, client = service_fixtures("wms", "wms:read wms:write")
