"""The explorer: GraphiQL served from the package (no CDN: it works offline) under a strict
Content-Security-Policy, without a token, with the example operations; the same through
the gateway."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from experience_apis.portal import explorer
from experience_apis.portal.app import create_app
from experience_apis.portal.limits.guard import DEFAULT_OPERATIONS_DIR
from tests.gateway.helpers import gateway_settings, serve
from tests.support.ports import free_port
from tests.support.tokens import TestIssuer

# The vendored builds, pinned (explorer/README.md): sha256 of each file as npm ships it.
PINNED = {
    "graphiql-4.1.2.min.js": "867226ba8af5ce7949903fc53932f78dac9f4bfc6cc8da0fd3869b8bc6c5256b",
    "graphiql-4.1.2.min.css": "30487e07635d312a63f647b140d37740a73c53332b0975bf4b1fe985ca6ec885",
    "react-18.3.1.production.min.js": (
        "d949f1c3687aedadcedac85261865f29b17cd273997e7f6b2bfc53b2f9d4c4dd"
    ),
    "react-dom-18.3.1.production.min.js": (
        "35f4f974f4b2bcd44da73963347f8952e341f83909e4498227d4e26b98f66f0d"
    ),
}
HTML = {"Accept": "text/html"}


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_strict_csp(response: httpx.Response) -> dict[str, list[str]]:
    policy = directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no other host
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    for values in policy.values():
        assert "'unsafe-inline'" not in values and "'unsafe-eval'" not in values
        assert not any(v.startswith(("http:", "https:", "*")) or v == "*" for v in values)
    assert response.headers["x-content-type-options"] == "nosniff"
    return policy


def referenced(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


async def test_the_page_is_served_without_a_token_under_a_strict_csp(
    portal: AsyncTestClient[Any],
) -> None:
    first = await portal.get("/graphql/explorer")
    second = await portal.get("/graphql/explorer/")  # the trailing slash, the same page
    with_bad_token = await portal.get(
        "/graphql/explorer", headers={"Authorization": "Bearer not-a-token"}
    )

    assert first.status_code == second.status_code == with_bad_token.status_code == 200
    assert first.headers["content-type"].startswith("text/html")
    assert first.headers["cache-control"] == "no-store"
    policy = assert_strict_csp(first)
    # The only inline allowance: styles bearing this response's nonce (Radix's lock).
    (nonce,) = [v for v in policy["style-src"] if v.startswith("'nonce-")]
    assert policy["style-src"] == ["'self'", nonce]
    assert f'content="{nonce[7:-1]}"' in first.text
    assert nonce not in second.headers["content-security-policy"]  # fresh per answer


async def test_the_page_has_no_inline_script_style_or_external_url(
    portal: AsyncTestClient[Any],
) -> None:
    page = (await portal.get("/graphql/explorer")).text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)

    assert len(scripts) == 4
    assert all('src="/graphql/explorer/assets/' in attrs and body == "" for attrs, body in scripts)
    assert "<style" not in page and "style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert all(url.startswith("/graphql/explorer/assets/") for url in referenced(page))


async def test_every_asset_is_served_from_the_package(portal: AsyncTestClient[Any]) -> None:
    page = (await portal.get("/graphql/explorer")).text

    for url in referenced(page):
        response = await portal.get(url)
        assert response.status_code == 200, url
        assert_strict_csp(response)
        assert response.headers["content-type"].split(";")[0] in ("text/javascript", "text/css")
        name = url.rsplit("/", 1)[1].split("?")[0]
        if name in PINNED:  # the vendored build, byte for byte, sent gzipped
            assert response.headers["content-encoding"] == "gzip"
            assert hashlib.sha256(response.content).hexdigest() == PINNED[name]
            assert "immutable" in response.headers["cache-control"]
        else:  # our bootstrap and CSS: no external URL either
            assert "content-encoding" not in response.headers
            assert "http://" not in response.text and "https://" not in response.text
    assert {url.rsplit("/", 1)[1] for url in referenced(page)} >= set(PINNED)


async def test_a_client_without_gzip_gets_the_plain_file(portal: AsyncTestClient[Any]) -> None:
    response = await portal.get(
        "/graphql/explorer/assets/react-18.3.1.production.min.js",
        headers={"Accept-Encoding": "identity"},
    )

    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert hashlib.sha256(response.content).hexdigest() == PINNED["react-18.3.1.production.min.js"]


@pytest.mark.parametrize(
    "name", ["nope.js", "..%2Fexplorer.js", "vendor%2Fgraphiql-4.1.2.min.js.gz", "README.md"]
)
async def test_only_the_listed_assets_are_served(portal: AsyncTestClient[Any], name: str) -> None:
    response = await portal.get(f"/graphql/explorer/assets/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_get_graphql_in_a_browser_is_the_explorer_and_runs_nothing_otherwise(
    portal: AsyncTestClient[Any], token: Callable[..., str]
) -> None:
    page = await portal.get("/graphql", headers=HTML)
    json = await portal.get(
        "/graphql",
        params={"query": "{ __typename }"},
        headers={"Accept": "application/json", "Authorization": f"Bearer {token()}"},
    )

    assert page.status_code == 200
    assert_strict_csp(page)
    assert "graphiql" in page.text.lower()
    assert json.status_code == 400
    assert json.headers["content-type"].startswith("application/problem+json")


async def test_the_example_operations_are_listed(portal: AsyncTestClient[Any]) -> None:
    response = await portal.get("/graphql/explorer/operations.json")

    assert response.status_code == 200
    assert_strict_csp(response)
    listed = response.json()
    files = sorted(DEFAULT_OPERATIONS_DIR.glob("*.graphql"))
    assert [op["file"] for op in listed] == [f.stem for f in files]
    for op, path in zip(listed, files, strict=True):
        assert op["query"] == path.read_text(encoding="utf-8")
        assert op["sha256Hash"] == hashlib.sha256(op["query"].encode()).hexdigest()
        assert op["name"]


async def test_the_operations_setting_names_the_folder(
    portal_settings: Any, issuer: TestIssuer, tmp_path: Path
) -> None:
    (tmp_path / "orders.graphql").write_text("query MyOrders { __typename }\n")
    (tmp_path / "orders.json").write_text('{"first": 5}')
    (tmp_path / "notes.txt").write_text("not an operation")
    settings = msgspec.structs.replace(portal_settings, portal_operations_dir=str(tmp_path))
    async with AsyncTestClient(app=create_app(settings, key_source=issuer.key_source())) as c:
        listed = (await c.get("/graphql/explorer/operations.json")).json()

    assert listed == [
        {
            "file": "orders",
            "name": "MyOrders",
            "query": "query MyOrders { __typename }\n",
            "variables": '{"first": 5}',
            "sha256Hash": hashlib.sha256(b"query MyOrders { __typename }\n").hexdigest(),
        }
    ]


def test_the_bootstrap_keeps_the_token_in_the_browser_and_sends_it_as_a_bearer() -> None:
    script = (explorer.STATIC / "explorer.js").read_text()

    assert "localStorage" in script
    assert '"Bearer " + token' in script
    assert 'credentials: "omit"' in script  # no cookie ever rides along
    assert "eval(" not in script and "innerHTML" not in script
    node = shutil.which("node")
    if node is not None:  # a syntax check where node is installed
        subprocess.run([node, "--check", str(explorer.STATIC / "explorer.js")], check=True)


def test_the_vendored_files_are_the_pinned_builds() -> None:
    for name, digest in PINNED.items():
        stored = explorer.STATIC / explorer.ASSETS[name]
        assert hashlib.sha256(gzip.decompress(stored.read_bytes())).hexdigest() == digest
    readme = (explorer.STATIC.parent / "README.md").read_text()
    for name in PINNED:
        assert name in readme
    assert "MIT" in readme


# --- through the gateway -------------------------------------------------------------------


@pytest.fixture
def portal_server(portal_settings: Any, issuer: TestIssuer) -> Iterator[str]:
    with serve(create_app(portal_settings, key_source=issuer.key_source())) as url:
        yield url


def test_the_gateway_routes_the_explorer_and_keeps_its_headers(
    portal_server: str, tmp_path: Path
) -> None:
    from gateway.app import create_app as create_gateway

    with (
        serve(create_gateway(gateway_settings(tmp_path, portal_server))) as url,
        httpx.Client(base_url=url, timeout=20) as http,
    ):
        page = http.get("/graphql/explorer")
        direct = httpx.get(f"{portal_server}/graphql/explorer")
        assets = [http.get(u) for u in referenced(page.text)]
        listed = http.get("/graphql/explorer/operations.json")
        browser = http.get("/graphql", headers=HTML)

    assert page.status_code == 200
    policy = assert_strict_csp(page)
    assert set(policy) == set(directives(direct.headers["content-security-policy"]))
    assert page.headers["cache-control"] == "no-store"
    for asset in assets:
        assert asset.status_code == 200
        assert_strict_csp(asset)
    graphiql = next(a for a in assets if "graphiql-4.1.2.min.js" in str(a.url))
    assert graphiql.headers["content-encoding"] == "gzip"
    assert hashlib.sha256(graphiql.content).hexdigest() == PINNED["graphiql-4.1.2.min.js"]
    assert listed.status_code == 200
    assert browser.status_code == 200
    assert_strict_csp(browser)


# --- in a real browser (where chromium is installed) ---------------------------------------


class Browser:
    """Headless chromium driven over the DevTools protocol (websockets)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.calls = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.calls += 1
        sent = self.calls
        await self.ws.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if message.get("id") == sent:
                return dict(message.get("result", {}))
            self.events.append(message)

    async def js(self, expression: str) -> Any:
        answer = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        return answer.get("result", {}).get("value")

    async def until(self, expression: str, seconds: float = 20) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"never true: {expression}")

    def of(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.events if e.get("method") == method]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    import websockets  # gql[websockets], a dev dependency

    if chromium is None:
        # CI installs chromium (.ci/run) and must run this; a laptop without it skips.
        if os.environ.get("TALLY_REQUIRE_SERVERS") == "1":
            pytest.fail("chromium is not installed (CI needs it for the explorer test)")
        pytest.skip("chromium is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        targets: list[dict[str, Any]] = []
        for _ in range(100):
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json", timeout=2).json()
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
        page = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=2**26) as ws:
            browser = Browser(ws)
            for domain in ("Network", "Log", "Page", "Runtime"):
                await browser.call(f"{domain}.enable")
            yield browser
    finally:
        process.terminate()
        process.wait(timeout=10)


SUBSCRIPTION = "subscription Watch { orderUpdates { orderId status } }"


@pytest.mark.slow
async def test_in_a_browser_graphiql_runs_under_the_csp_with_the_pasted_token(
    browser: Browser, portal_server: str, token: Callable[..., str]
) -> None:
    await browser.call("Page.navigate", url=f"{portal_server}/graphql/explorer")
    await browser.until("!!document.querySelector('.graphiql-container')")
    assert await browser.js("localStorage.getItem('tally.portal.token')") is None

    bearer = token()
    await browser.js(
        f"document.getElementById('tally-token').value = {json.dumps(bearer)};"
        "document.getElementById('tally-token-form').requestSubmit(); 1"
    )
    assert await browser.js("localStorage.getItem('tally.portal.token')") == bearer
    browser.events.clear()
    await browser.call("Page.reload")
    await browser.until("!!document.querySelector('.graphiql-container')")
    await browser.until("document.querySelectorAll('.graphiql-tab').length > 0")

    def with_token_answers() -> tuple[set[str], list[int]]:
        # Requests of the page before the reload may still report: only the new page's.
        sent = {
            r["requestId"]: r["request"]
            for r in browser.of("Network.requestWillBeSent")
            if r["request"]["url"].endswith("/graphql") and r["request"]["method"] == "POST"
        }
        with_token = {
            rid
            for rid, r in sent.items()
            if r["headers"].get("Authorization") == f"Bearer {bearer}"
        }
        answered = [
            r["response"]["status"]
            for r in browser.of("Network.responseReceived")
            if r["requestId"] in with_token
        ]
        return with_token, answered

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not with_token_answers()[1]:
        await browser.js("1")  # collects the events meanwhile
        await asyncio.sleep(0.2)
    with_token, answered = with_token_answers()
    assert with_token
    assert answered and set(answered) == {200}  # the schema, read with the token
    requested = [r["request"]["url"] for r in browser.of("Network.requestWillBeSent")]
    assert all(url.startswith((portal_server, "data:")) for url in requested), requested

    examples = await browser.js("document.getElementById('tally-examples').options.length - 1")
    assert examples == len(list(DEFAULT_OPERATIONS_DIR.glob("*.graphql")))
    if examples:
        await browser.js(
            "var s = document.getElementById('tally-examples'); s.value = '0';"
            "s.dispatchEvent(new Event('change')); 1"
        )
        first = sorted(DEFAULT_OPERATIONS_DIR.glob("*.graphql"))[0].read_text()
        await browser.until(
            "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
            f".getValue() === {json.dumps(first)}"
        )
    # A subscription runs over a WebSocket to the same origin, the token in connection_init.
    await browser.js(
        "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
        f".setValue({json.dumps(SUBSCRIPTION)}); 1"
    )
    await asyncio.sleep(1)  # GraphiQL reparses the editor's operations after a pause
    await browser.js("document.querySelector('.graphiql-execute-button').click(); 1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
        '"connection_ack"' in f["response"]["payloadData"]
        for f in browser.of("Network.webSocketFrameReceived")
    ):
        await browser.js("1")
        await asyncio.sleep(0.2)
    shown = await browser.js(
        "(document.querySelector('.graphiql-response .CodeMirror') || {CodeMirror: "
        "{getValue: function () { return 'no response pane'; }}}).CodeMirror.getValue()"
    )
    assert browser.of("Network.webSocketCreated"), shown
    (opened,) = browser.of("Network.webSocketCreated")
    assert opened["url"] == portal_server.replace("http://", "ws://") + "/graphql"
    sent_frames = [
        json.loads(f["response"]["payloadData"]) for f in browser.of("Network.webSocketFrameSent")
    ]
    assert sent_frames[0] == {
        "type": "connection_init",
        "payload": {"Authorization": f"Bearer {bearer}"},
    }

    def subscribed() -> list[dict[str, Any]]:
        frames = [
            json.loads(f["response"]["payloadData"])
            for f in browser.of("Network.webSocketFrameSent")
        ]
        return [
            f
            for f in frames
            if f.get("type") == "subscribe" and "orderUpdates" in f["payload"]["query"]
        ]

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not subscribed():
        await browser.js("1")  # collects the events meanwhile
        await asyncio.sleep(0.2)
    assert subscribed(), browser.of("Network.webSocketFrameSent")
    await browser.js("document.querySelector('.graphiql-execute-button').click(); 1")  # stop
    await browser.js("document.querySelector('[aria-label=\"Open settings dialog\"]').click(); 1")
    await browser.until("!!document.querySelector('[role=dialog]')")
    violations = [
        e["entry"]["text"]
        for e in browser.of("Log.entryAdded")
        if "Content Security Policy" in e["entry"]["text"]
    ]
    assert violations == []
