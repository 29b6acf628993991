"""The portal's explorer: GraphiQL served from this package (no CDN, so it works on an
offline machine) under a strict Content-Security-Policy. See README.md beside this
file for the vendored versions and their licenses.

- ``/graphql/explorer`` (and ``GET /graphql`` in a browser): the page. No inline
  script or style; its bootstrap is ``static/explorer.js``.
- ``/graphql/explorer/assets/{asset}``: GraphiQL, React, the bootstrap and its CSS.
  The vendored builds are kept gzipped and sent as they are to a browser that accepts
  gzip (every one does), unpacked for one that does not.
- ``/graphql/explorer/operations.json``: the example operations (the registry of
  persisted operations), opened as tabs and listed in the page.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from experience_apis.portal.limits.persisted import OperationRegistry

STATIC = Path(__file__).resolve().parent / "static"
EXPLORER_PATH = "/graphql/explorer"
ASSETS_PATH = f"{EXPLORER_PATH}/assets"
OPERATIONS_PATH = f"{EXPLORER_PATH}/operations.json"

GRAPHIQL_VERSION = "4.1.2"
REACT_VERSION = "18.3.1"

# Name served -> file under static/ (".gz": stored gzipped).
ASSETS = {
    f"react-{REACT_VERSION}.production.min.js": f"vendor/react-{REACT_VERSION}.production.min.js.gz",
    f"react-dom-{REACT_VERSION}.production.min.js": (
        f"vendor/react-dom-{REACT_VERSION}.production.min.js.gz"
    ),
    f"graphiql-{GRAPHIQL_VERSION}.min.js": f"vendor/graphiql-{GRAPHIQL_VERSION}.min.js.gz",
    f"graphiql-{GRAPHIQL_VERSION}.min.css": f"vendor/graphiql-{GRAPHIQL_VERSION}.min.css.gz",
    "explorer.js": "explorer.js",
    "explorer.css": "explorer.css",
}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}  # Litestar adds the charset
# The vendored files never change under a name (the version is in it); ours may.
VENDOR_CACHE = "public, max-age=31536000, immutable"
OWN_CACHE = "no-cache"


def content_security_policy(style_nonce: str | None = None) -> str:
    """Everything from this origin only; no inline script at all; inline style only
    with the page's nonce (Radix's scroll lock). Fonts and icons come as data: URIs
    inside GraphiQL's CSS."""
    style = "'self'" + (f" 'nonce-{style_nonce}'" if style_nonce else "")
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            f"style-src {style}",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    gzipped: bool
    cache_control: str


@cache
def _stored(name: str) -> tuple[bytes, bool]:
    relative = ASSETS[name]
    data = (STATIC / relative).read_bytes()
    return data, relative.endswith(".gz")


@cache
def _unpacked(name: str) -> bytes:
    data, gzipped = _stored(name)
    return gzip.decompress(data) if gzipped else data


def asset(name: str, *, accepts_gzip: bool) -> Asset | None:
    if name not in ASSETS:
        return None
    data, gzipped = _stored(name)
    media_type = MEDIA_TYPES[Path(name).suffix]
    cache_control = VENDOR_CACHE if gzipped else OWN_CACHE
    if gzipped and not accepts_gzip:
        return Asset(_unpacked(name), media_type, False, cache_control)
    return Asset(data, media_type, gzipped, cache_control)


@cache
def _fingerprint(name: str) -> str:
    return hashlib.sha256(_unpacked(name)).hexdigest()[:12]


def _src(name: str) -> str:
    """The asset's URL; our own files carry their content hash (no stale bootstrap)."""
    if name.startswith(("graphiql-", "react-")):
        return f"{ASSETS_PATH}/{name}"
    return f"{ASSETS_PATH}/{name}?v={_fingerprint(name)}"


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def page(style_nonce: str, endpoint: str = "/graphql") -> str:
    scripts = "\n".join(
        f'    <script src="{html.escape(_src(name))}" defer></script>'
        for name in (
            f"react-{REACT_VERSION}.production.min.js",
            f"react-dom-{REACT_VERSION}.production.min.js",
            f"graphiql-{GRAPHIQL_VERSION}.min.js",
            "explorer.js",
        )
    )
    styles = "\n".join(
        f'    <link rel="stylesheet" href="{html.escape(_src(name))}">'
        for name in (f"graphiql-{GRAPHIQL_VERSION}.min.css", "explorer.css")
    )
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="tally-style-nonce" content="{html.escape(style_nonce)}">
    <title>Tally portal GraphQL explorer (GraphiQL)</title>
{styles}
{scripts}
  </head>
  <body>
    <header id="tally-bar">
      <strong>Tally portal GraphQL</strong>
      <form id="tally-token-form" autocomplete="off">
        <label for="tally-token">Access token</label>
        <input id="tally-token" type="password" autocomplete="off"
               placeholder="paste once: kept in this browser">
        <button type="submit">Save</button>
        <button type="button" id="tally-token-clear">Forget</button>
      </form>
      <span id="tally-status"></span>
      <label for="tally-examples">Examples</label>
      <select id="tally-examples" disabled>
        <option value="">open an example operation...</option>
      </select>
    </header>
    <main id="graphiql" data-endpoint="{html.escape(endpoint)}"
          data-operations="{html.escape(OPERATIONS_PATH)}">Loading GraphiQL...</main>
  </body>
</html>
"""


def operations(registry: OperationRegistry) -> list[dict[str, Any]]:
    return [
        {
            "file": op.file,
            "name": op.name,
            "query": op.query,
            "variables": op.variables,
            "sha256Hash": op.sha256,
        }
        for op in registry
    ]
