"""Every JSON body a published contract describes has an example, and every example
validates against its own schema (partners copy them; Spectral and Schemathesis read
them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

CONTRACTS = sorted((Path(__file__).parents[2] / "contracts" / "openapi").glob("*/v*.json"))


def _bodies(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            request = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if request:
                found.append((f"{method.upper()} {path} request", request))
            for status, response in operation.get("responses", {}).items():
                media = response.get("content", {}).get("application/json")
                if media and str(status).startswith("2"):
                    found.append((f"{method.upper()} {path} {status}", media))
    return found


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_every_body_has_an_example_that_its_schema_accepts(contract: Path) -> None:
    document = json.loads(contract.read_text())
    bodies = _bodies(document)
    assert bodies
    wrong = []
    for where, media in bodies:
        assert "example" in media, f"{where} has no example"
        schema = {**media["schema"], "components": document["components"]}
        errors = [
            e.message for e in jsonschema_rs.validator_for(schema).iter_errors(media["example"])
        ]
        if errors:
            wrong.append(f"{where}: {errors[0]}")
    assert wrong == []
