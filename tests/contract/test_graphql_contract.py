"""The portal's SDL under the same governance as the OpenAPI documents: drift check,
breaking changes against the released baseline (graphql-core's
``find_breaking_changes``; ``find_dangerous_changes`` as notes), release and accept."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from graphql import build_schema
from typer.testing import CliRunner

import tally.contracts as contracts
from tally.contracts import (
    check,
    compare,
    compare_graphql,
    graphql_changes,
    graphql_schemas,
    release,
)
from tally.contracts.commands import contracts_app

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
KEY = "graphql/portal"
FILE = "graphql/portal.graphql"
runner = CliRunner()

# The shape of the first released portal SDL, cut down: enough for every rule below.
SDL = '''"""A sales order."""
type Order {
  id: ID!
  status: String!
  currency: String
  lines: [OrderLine!]!
}

type OrderLine {
  sku: String!
  quantity: Int!
}

type Availability {
  sku: String!
  availableToPromise: Int!
}

type OrderPlaced {
  order: Order!
}

type CreditHold {
  code: String!
  message: String!
}

union PlaceOrderResult = OrderPlaced | CreditHold

enum OrderStatus {
  ACCEPTED
  SHIPPED
}

input LineInput {
  sku: ID!
  quantity: Int!
}

type Query {
  order(id: ID!): Order
  orders(first: Int! = 20, after: String = null): [Order!]!
  availability(sku: ID!): Availability
}

type Mutation {
  placeOrder(idempotencyKey: String!, lines: [LineInput!]!): PlaceOrderResult!
}
'''


def changed(old: str, new: str) -> str:
    assert old in SDL, old
    return SDL.replace(old, new, 1)


def rules(old: str, new: str) -> tuple[list[str], list[str]]:
    breaking, dangerous = graphql_changes(old, new, KEY)
    return [c.rule for c in breaking], [c.rule for c in dangerous]


def test_the_sample_builds() -> None:
    build_schema(SDL)


# --- what breaks a client -------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("  currency: String\n", "", ["field-removed"], id="removed-field"),
        pytest.param(
            "  status: String!\n", "  status: Int!\n", ["field-changed-kind"], id="changed-type"
        ),
        pytest.param(
            "  status: String!\n", "  status: String\n", ["field-changed-kind"], id="now-nullable"
        ),
        pytest.param(
            "availability(sku: ID!): Availability",
            "availability(sku: ID!): OrderLine",
            ["field-changed-kind"],
            id="other-object-type",
        ),
        pytest.param(
            "availability(sku: ID!): Availability",
            "availability(skus: [ID!]!, channel: String): [Availability!]!",
            ["arg-removed", "field-changed-kind", "required-arg-added"],
            id="availability-sku-to-skus",
        ),
        pytest.param(
            "order(id: ID!): Order", "order(id: ID!, at: String!): Order", ["required-arg-added"]
        ),
        pytest.param(
            "  quantity: Int!\n}\n\ntype Query",
            "  quantity: Int!\n  uom: String!\n}\n\ntype Query",
            ["required-input-field-added"],
            id="required-input-field",
        ),
        pytest.param("  SHIPPED\n", "", ["value-removed-from-enum"], id="enum-value-removed"),
        pytest.param(
            "OrderPlaced | CreditHold", "OrderPlaced", ["type-removed-from-union"], id="union"
        ),
    ],
)
def test_a_broken_promise_is_breaking(old: str, new: str, expected: list[str]) -> None:
    breaking, _ = rules(SDL, changed(old, new))
    assert breaking == expected


def test_the_change_names_the_schema_and_the_field() -> None:
    [change], _ = graphql_changes(SDL, changed("  currency: String\n", ""), KEY)
    assert str(change) == "graphql/portal: Field Order.currency was removed. [field-removed]"


# --- what does not ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("  currency: String\n", "  currency: String\n  notes: String\n", id="field"),
        pytest.param(
            "  currency: String\n", "  currency: String\n  total: Int!\n", id="non-null-output"
        ),
        pytest.param("type Query {", "type Invoice {\n  id: ID!\n}\n\ntype Query {", id="type"),
        pytest.param("  status: String\n", "  status: String!\n", id="output-made-non-null"),
        pytest.param(
            "  order(id: ID!): Order\n",
            "  order(id: ID!): Order\n  viewer: Order\n",
            id="query-field",
        ),
        pytest.param(
            "  currency: String\n",
            '  currency: String @deprecated(reason: "use money")\n',
            id="deprecated",
        ),
    ],
)
def test_an_addition_is_not_breaking(old: str, new: str) -> None:
    before = SDL if old in SDL else changed(new, old)  # "made non-null" starts nullable
    after = before.replace(old, new, 1)
    assert rules(before, after) == ([], [])


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "orders(first: Int! = 20, after: String = null)",
            "orders(first: Int! = 20, after: String = null, status: String)",
            ["optional-arg-added"],
            id="optional-arg",
        ),
        pytest.param("  SHIPPED\n", "  SHIPPED\n  CANCELLED\n", ["value-added-to-enum"], id="enum"),
        pytest.param(
            "OrderPlaced | CreditHold",
            "OrderPlaced | CreditHold | OrderLine",
            ["type-added-to-union"],
            id="union-member",
        ),
        pytest.param(
            "first: Int! = 20", "first: Int! = 50", ["arg-default-value-change"], id="default"
        ),
    ],
)
def test_a_dangerous_change_is_a_note_not_a_failure(
    old: str, new: str, expected: list[str]
) -> None:
    assert rules(SDL, changed(old, new)) == ([], expected)


def test_an_sdl_that_does_not_build_is_breaking() -> None:
    [change], dangerous = graphql_changes(SDL, "type Query { order: Nope }", KEY)
    assert change.rule == "invalid-schema"
    assert "new SDL does not build" in change.detail
    assert dangerous == []


# --- drift, baseline, release, accept ---------------------------------------------------


def files(sdl: str) -> dict[str, str]:
    return {FILE: sdl, "events/catalog.json": "{}"}


def test_only_graphql_files_are_schemas() -> None:
    found = graphql_schemas({FILE: SDL, "openapi/orders/v1.json": "{}", "graphql/x.txt": ""})
    assert found == {"portal": SDL}


def test_drift_between_the_code_and_the_committed_sdl_is_detected(tmp_path: Path) -> None:
    (tmp_path / "graphql").mkdir()
    (tmp_path / FILE).write_text(SDL)
    assert check(target=tmp_path, files={FILE: SDL}) == []
    assert check(target=tmp_path, files={FILE: changed("  currency: String\n", "")}) == [FILE]
    (tmp_path / FILE).unlink()
    assert check(target=tmp_path, files={FILE: SDL}) == [FILE]


def test_release_publishes_then_refuses_a_break_then_accepts_it(tmp_path: Path) -> None:
    [report] = compare_graphql(files(SDL), baseline_dir=tmp_path)
    assert not report.released
    released, refused = release(files(SDL), baseline_dir=tmp_path)
    assert [r.key for r in released] == [KEY] and refused == []
    assert (tmp_path / "graphql" / "portal.graphql").read_text() == SDL

    broken = changed("availability(sku: ID!)", "availability(skus: [ID!]!, channel: String)")
    [report] = compare_graphql(files(broken), baseline_dir=tmp_path)
    assert report.changed and [c.rule for c in report.breaking] == [
        "arg-removed",
        "required-arg-added",
    ]
    assert [c.rule for c in report.dangerous] == ["optional-arg-added"]
    released, refused = release(files(broken), baseline_dir=tmp_path)
    assert released == [] and [r.key for r in refused] == [KEY]
    assert (tmp_path / "graphql" / "portal.graphql").read_text() == SDL

    released, refused = release(
        files(broken), baseline_dir=tmp_path, accept_breaking="first release of the portal"
    )
    assert [r.key for r in released] == [KEY] and refused == []
    log = (tmp_path / "ACCEPTED.md").read_text()
    assert "## graphql/portal — " in log
    assert "Reason: first release of the portal" in log
    assert "- graphql/portal: Argument Query.availability(sku:) was removed. [arg-removed]" in log
    assert "- note (dangerous): graphql/portal: An optional argument" in log
    # The accepted break passes from now on.
    [report] = compare_graphql(files(broken), baseline_dir=tmp_path)
    assert not report.changed and report.breaking == []


def test_a_compatible_change_moves_the_baseline(tmp_path: Path) -> None:
    release(files(SDL), baseline_dir=tmp_path)
    added = changed("  currency: String\n", "  currency: String\n  notes: String\n")
    [report] = compare_graphql(files(added), baseline_dir=tmp_path)
    assert report.changed and report.breaking == []
    release(files(added), baseline_dir=tmp_path)
    # From now on the added field is a promise.
    [report] = compare_graphql(files(SDL), baseline_dir=tmp_path)
    assert [c.rule for c in report.breaking] == ["field-removed"]


def test_accepting_one_contract_accepts_no_other(tmp_path: Path) -> None:
    """``only``: the portal's accepted break does not carry an OpenAPI break with it."""
    document = '{"openapi": "3.1.0", "paths": {"/a": {"get": {"responses": {"200": {}}}}}}'
    both = {**files(SDL), "openapi/orders/v1.json": document}
    release(both, baseline_dir=tmp_path)
    broken = {
        FILE: changed("  currency: String\n", ""),
        "openapi/orders/v1.json": '{"openapi": "3.1.0", "paths": {}}',
    }
    released, refused = release(
        broken, baseline_dir=tmp_path, accept_breaking="portal only", only={KEY}
    )
    assert [r.key for r in released] == [KEY] and refused == []
    assert [c.rule for c in compare(broken, baseline_dir=tmp_path)[0].breaking] == ["removed-path"]
    assert "orders/v1" not in (tmp_path / "ACCEPTED.md").read_text()


def test_every_committed_schema_has_a_released_baseline() -> None:
    committed = {
        f"graphql/{p.name}": p.read_text() for p in (CONTRACTS / "graphql").glob("*.graphql")
    }
    assert FILE in committed
    reports = compare_graphql(committed, baseline_dir=CONTRACTS / "baseline")
    assert [r.key for r in reports if not r.released] == []
    build_schema((CONTRACTS / "baseline" / FILE).read_text())


# --- the commands -------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`tally contracts check/release` over a temporary contracts/ and baseline/."""
    target, baseline = tmp_path / "contracts", tmp_path / "contracts" / "baseline"
    (target / "graphql").mkdir(parents=True)
    (target / FILE).write_text(SDL)
    release(files(SDL), baseline_dir=baseline)
    monkeypatch.setattr(contracts, "check", partial(check, target))
    monkeypatch.setattr(contracts, "compare", partial(compare, baseline_dir=baseline))
    monkeypatch.setattr(
        contracts, "compare_graphql", partial(compare_graphql, baseline_dir=baseline)
    )
    monkeypatch.setattr(contracts, "release", partial(release, baseline_dir=baseline))
    return target


def code_exports(monkeypatch: pytest.MonkeyPatch, sdl: str) -> None:
    monkeypatch.setattr(contracts, "exported", lambda _data_dir=None: {FILE: sdl})


def test_check_passes_when_current(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code_exports(monkeypatch, SDL)
    result = runner.invoke(contracts_app, ["check"])
    assert result.exit_code == 0, result.output
    assert "contracts are current" in result.output


def test_check_fails_on_drift(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    added = changed("  currency: String\n", "  currency: String\n  notes: String\n")
    code_exports(monkeypatch, added)
    result = runner.invoke(contracts_app, ["check"])
    assert result.exit_code == 1
    assert "differs: contracts/graphql/portal.graphql" in result.output
    assert "note: graphql/portal has compatible unreleased changes" in result.output


def test_check_fails_on_a_break_and_prints_dangerous_notes(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = changed("availability(sku: ID!)", "availability(skus: [ID!]!, channel: String)")
    (tree / FILE).write_text(broken)  # exported and committed: no drift, still breaking
    code_exports(monkeypatch, broken)
    result = runner.invoke(contracts_app, ["check"])
    assert result.exit_code == 1
    assert "differs" not in result.output
    assert "breaking: graphql/portal breaks 2 promise(s)" in result.output
    assert "contracts/baseline/graphql/portal.graphql" in result.output
    assert "Argument Query.availability(sku:) was removed. [arg-removed]" in result.output
    assert "note: graphql/portal dangerous change:" in result.output
    assert "--only graphql/portal --accept-breaking" in result.output

    refused = runner.invoke(contracts_app, ["release"])
    assert refused.exit_code == 1 and "refused: graphql/portal" in refused.output
    accepted = runner.invoke(
        contracts_app,
        ["release", "--only", KEY, "--accept-breaking", "first release of the portal schema"],
    )
    assert accepted.exit_code == 0, accepted.output
    assert "released graphql/portal (breaking changes accepted)" in accepted.output
    result = runner.invoke(contracts_app, ["check"])
    assert result.exit_code == 0, result.output


def test_release_refuses_an_unknown_key(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code_exports(monkeypatch, SDL)
    result = runner.invoke(contracts_app, ["release", "--only", "graphql/nope"])
    assert result.exit_code == 2
    assert "unknown contract(s): graphql/nope" in result.output


def test_diff_reads_graphql_files(tmp_path: Path) -> None:
    old, new = tmp_path / "old.graphql", tmp_path / "portal.graphql"
    old.write_text(SDL)
    new.write_text(changed("  SHIPPED\n", "  SHIPPED\n  CANCELLED\n"))
    result = runner.invoke(contracts_app, ["diff", str(old), str(new)])
    assert result.exit_code == 0, result.output
    assert "note: dangerous: portal: Enum value OrderStatus.CANCELLED" in result.output
    assert "no breaking change" in result.output
    new.write_text(changed("  currency: String\n", ""))
    result = runner.invoke(contracts_app, ["diff", str(old), str(new)])
    assert result.exit_code == 1
    assert "portal: Field Order.currency was removed. [field-removed]" in result.output
