"""The whole platform as real processes (the code path of `tally up`), for the
end-to-end and contract suites."""

from __future__ import annotations

import httpx

from tally.launcher import Launched
from tests.support.tls import TLS


class PlatformClient:
    """Talks to a launched platform through its gateway, as a partner would."""

    def __init__(self, launched: Launched) -> None:
        self.launched = launched
        self.platform = launched.platform
        self.gateway = launched.platform.url("gateway")
        demo = launched.clients["demo"]
        self.demo_id, self.demo_secret = demo["client_id"], demo["client_secret"]

    def url(self, service: str) -> str:
        return self.platform.url(service)

    def token(self, client_id: str | None = None, secret: str | None = None, **form: str) -> str:
        response = httpx.post(
            f"{self.gateway}/oauth/token",
            data={"grant_type": "client_credentials", **form},
            auth=(client_id or self.demo_id, secret or self.demo_secret),
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def client(self, bearer: str | None = None, base: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {bearer or self.token()}"}
        return httpx.Client(base_url=base or self.gateway, headers=headers, timeout=30, verify=TLS)
