"""Schemathesis's GraphQL mode against the portal's /graphql, through the gateway of the
real platform (every service its own process), with a partner's token: bound to one
customer, the portal's scopes and nothing more (made the operator's way, `tally clients
create`).

The schema is loaded the way a partner's tooling would (``schemathesis.graphql.from_url``:
introspection through the gateway, with the token); every query and mutation field is
one operation, and Hypothesis generates valid operations for each (arguments, nested
selections, fragments) with Schemathesis's default checks on each answer. On top, each
answer must be a GraphQL answer: a JSON object with ``data`` and/or ``errors``, never a
5xx, never an HTML or problem page, never an unexpected exception (masked as "Internal
error.", or without a ``code`` in its extensions). Refusals the portal documents
(a limit, a bad argument, a refused write as a typed result) are answers, not failures.

The Python API is used (not the pytest plugin, whose ``from_fixture`` loader breaks on
pytest 9.2.0; see test_schemathesis.py): the schema can only be loaded once the
``platform`` fixture has started it.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response

from tests.security.helpers import bearer, register_client
from tests.support.platform import PlatformClient
from tests.support.polling import wait_until

# What a customer portal's client holds: the portal, and the process APIs it forwards to.
PARTNER_SCOPES = "portal orders:read orders:write inventory:read inventory:write billing:read"
EXAMPLES = 25  # per operation (13 of them today), generated with a fixed seed
# Error codes of expected outcomes are the portal's business; an error without one, or
# the masked text of an unexpected exception, is a server bug behind a 200.
MASKED = "Internal error."
# Schemathesis's GraphQL checks: a 5xx or an error the server does not label as the
# client's (ST113), a body that is not a GraphQL answer or a null in a non-null field
# (ST114/ST115). Left out: positive_data_acceptance (ST206), which fails any refusal of a
# schema-valid query; the portal refuses some by design (a limit, an argument the
# process API refuses: BAD_USER_INPUT), as the OpenAPI runs accept documented 4xx.
CHECKS = [not_a_server_error, response_schema_conformance]


def usd(amount_minor: int) -> dict[str, Any]:
    return {"amount_minor": amount_minor, "currency": "USD"}


@pytest.fixture(scope="module")
def partner(platform: PlatformClient) -> str:
    """A customer with a stocked sku and one order, and its portal client's token."""
    tag = uuid.uuid4().hex[:8].upper()
    sku, customer_id = f"GQL-{tag}", f"CUST-GQL-{tag}"
    with platform.client() as staff:
        item = {"sku": sku, "name": "Fuzzed item", "unit_price": usd(1500)}
        assert staff.post("/erp/v1/items", json=item).status_code == 201
        customer = {"customer_id": customer_id, "name": "Fuzz Co", "credit_limit": usd(10**9)}
        assert staff.post("/erp/v1/customers", json=customer).status_code == 201
        receipt = {"warehouse_id": "WH-EAST", "lines": [{"sku": sku, "quantity": 500}]}
        received = staff.post(
            "/wms/v1/receipts", json=receipt, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert received.status_code == 201, received.text
        wait_until(
            lambda: (
                staff.get(f"/availability/v1/items/{sku}").json()["available_to_promise"] == 500
            ),
            what="the receipt in availability",
        )
        order = {
            "customer_id": customer_id,
            "channel": "b2b_portal",
            "lines": [{"sku": sku, "quantity": 2}],
        }
        placed = staff.post(
            "/orders/v1/orders", json=order, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert placed.status_code == 201, placed.text
    creds = register_client(platform, PARTNER_SCOPES, customer=customer_id, tier="internal")
    return bearer(platform, creds)


def graphql_problem(response: Response) -> str | None:
    """Why this answer is not an acceptable GraphQL answer (None: it is)."""
    if response.status_code >= 500:
        return f"server error {response.status_code}"
    media = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    if media not in ("application/json", "application/graphql-response+json"):
        return f"not a GraphQL answer: {response.status_code} {media or 'no content type'}"
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.status_code}"
    if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
        return f"not a GraphQL answer: {response.status_code} {str(body)[:200]}"
    for error in body.get("errors") or []:
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return f"malformed error: {error!r}"
        code = (error.get("extensions") or {}).get("code")
        if error["message"] == MASKED or code in ("INTERNAL_SERVER_ERROR", "INTERNAL"):
            return f"unexpected exception: {error}"
    return None


class Run:
    """What the generated calls found, per operation."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self.failures: dict[str, list[str]] = {}
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()

    def fuzz(self, operation: Any) -> None:
        label = operation.label

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            case = data.draw(operation.as_strategy())
            try:
                response = case.call_and_validate(session=self.session, timeout=30, checks=CHECKS)
            except (FailureGroup, Failure) as failure:  # keep going: report them all
                self.failures.setdefault(label, []).append(f"{failure}\n{case.body}"[:3000])
                return
            self.calls[label] += 1
            self.statuses[response.status_code] += 1
            problem = graphql_problem(response)
            if problem is not None:
                self.failures.setdefault(label, []).append(
                    f"{problem}\n{json.dumps(case.body)[:1500]}\n{response.text[:1500]}"
                )

        run()


def test_the_portal_graphql_meets_its_schema_through_the_gateway_with_a_partner_token(
    platform: PlatformClient, partner: str
) -> None:
    url = f"{platform.gateway}/graphql"
    headers = {"Authorization": f"Bearer {partner}"}
    schema = schemathesis.graphql.from_url(url, headers=headers, timeout=30, wait_for_schema=30)
    labels = []
    with requests.Session() as session:
        session.headers.update(headers)
        found = Run(session)
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operation = result.ok()
            labels.append(operation.label)
            found.fuzz(operation)
    print(f"calls per operation {dict(found.calls)}; statuses {dict(found.statuses)}")
    assert {"Query.viewer", "Query.availability", "Mutation.placeOrder"} <= set(labels)
    assert found.failures == {}, "\n\n".join(
        f"{label} ({len(cases)} failures), first:\n{cases[0]}"
        for label, cases in found.failures.items()
    )
    assert all(found.calls[label] > 0 for label in labels), found.calls
    # Answers happened, and not all of them refusals at the door.
    assert found.statuses[200] > 0, found.statuses
