"""Exports the contracts from code and compares them with the committed files.

Each REST API's document is split per major (``contracts/openapi/{api}/v{major}.json``).
"""

from __future__ import annotations

import importlib
import json
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from gateway.contracts.documents import for_major, majors_in
from shared.events.catalog import EVENT_TYPES
from shared.events.envelope import Event
from shared.openapi import openapi_document
from shared.settings import load_settings
from shared.topology import SERVICES

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"
REST_SERVICES = [s for s in SERVICES if s.api and s.name != "portal"]


def _load(import_string: str) -> Any:
    module, _, attr = import_string.partition(":")
    return getattr(importlib.import_module(module), attr)


def _default_settings(service: str, data_dir: Path) -> Any:
    # Exports must not depend on the caller's environment: default URLs only.
    settings = load_settings(service, data_dir=data_dir)
    defaults = {s.name: f"http://127.0.0.1:{s.port}" for s in SERVICES}
    return msgspec.structs.replace(
        settings,
        service_urls=defaults,
        issuer=defaults["gateway"],
        token_url=f"{defaults['gateway']}/oauth/token",
        jwks_url=f"{defaults['gateway']}/.well-known/jwks.json",
    )


def _dump(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def exported(data_dir: Path | None = None) -> dict[str, str]:
    """Relative path -> file content, for every contract the code defines.

    The apps are built over a throwaway data directory (inside ``data_dir`` when one is
    given, else the system's temporary folder) and removed after, so the export reads
    nothing of a running platform's data and leaves nothing behind."""
    files: dict[str, str] = {}
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        for spec in REST_SERVICES:
            app = _load(spec.app_factory)(settings=_default_settings(spec.name, Path(tmp)))
            document = openapi_document(app)
            for major in majors_in(document) or [1]:
                files[f"openapi/{spec.api}/v{major}.json"] = _dump(for_major(document, major))
    try:
        sdl = _load("experience_apis.portal.schema:sdl")()
        files["graphql/portal.graphql"] = sdl.rstrip() + "\n"
    except (ImportError, AttributeError):
        pass
    (_, components) = msgspec.json.schema_components([Event, *EVENT_TYPES.values()])
    files["events/catalog.json"] = _dump(
        {
            "title": "Tally event catalog",
            "envelope": "#/components/Event",
            "types": {name: f"#/components/{cls.__name__}" for name, cls in EVENT_TYPES.items()},
            "components": components,
        }
    )
    return files


def export(target: Path = CONTRACTS_DIR, data_dir: Path | None = None) -> list[Path]:
    written = []
    for relative, content in exported(data_dir).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


def check(target: Path = CONTRACTS_DIR, files: dict[str, str] | None = None) -> list[str]:
    """Relative paths whose committed content differs from the export (or is missing)."""
    drift = []
    for relative, content in (exported() if files is None else files).items():
        path = target / relative
        if not path.exists() or path.read_text() != content:
            drift.append(relative)
    return drift
