"""A deprecated major tells its callers where to go, and every link it sends resolves
through the gateway (a partner's tooling follows them)."""

from __future__ import annotations

import re

from tests.support.platform import PlatformClient


def test_every_link_of_a_deprecated_answer_resolves(platform: PlatformClient) -> None:
    with platform.client(platform.token()) as api:
        answer = api.get("/availability/v1/items/SKU-1001")
        assert answer.status_code == 200, answer.text
        assert answer.headers["deprecation"].startswith("@")
        assert answer.headers["sunset"].endswith("GMT")
        links = dict(
            (rel, target)
            for target, rel in re.findall(r'<([^>]+)>;\s*rel="([^"]+)"', answer.headers["link"])
        )
        assert set(links) == {"successor-version", "deprecation"}
        for target in links.values():
            assert api.get(target).status_code == 200, target
        assert "deprecation" not in api.get("/availability/v2/items/SKU-1001").headers
