"""The one assertion for RFC 9457 answers (shared/problems.py renders them)."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_MEDIA_TYPE = "application/problem+json"


def assert_problem(
    response: httpx.Response,
    status: int,
    problem_type: str | None = None,
    *,
    correlated: bool = True,
) -> dict[str, Any]:
    """``response`` is a problem with ``status`` and, when given, the type
    ``problem_type`` (a slug such as ``insufficient-scope`` or the whole
    ``/problems/insufficient-scope``). ``correlated``: its body quotes the
    ``X-Correlation-Id`` of the answer. Returns the problem for further checks."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, response.headers
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    if correlated:
        assert problem["correlation_id"] == response.headers["x-correlation-id"]
    if problem_type is not None:
        expected = problem_type if problem_type.startswith("/") else f"/problems/{problem_type}"
        assert problem["type"] == expected, problem
    return problem
