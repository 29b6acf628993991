"""The consumer's numbers on the service's /metrics."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.settings import Settings
from tests.availability.helpers import stock
from tests.support.polling import eventually


def test_metrics_show_the_consumer_outcomes_latency_and_lag(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=3)

    def caught_up() -> str | None:
        text = client.get("/metrics").text
        wanted = (
            'tally_events_pending{group="availability",stream="tally.wms"} 0.0',
            'tally_events_lag{group="availability",stream="tally.wms"} 0.0',
            'tally_events_oldest_pending_seconds{group="availability",stream="tally.wms"} 0.0',
        )
        return text if all(line in text for line in wanted) else None

    text = eventually(caught_up, timeout=10)
    assert text, "the lag gauges never showed the caught-up group"
    outcome = (
        'tally_events_handled_total{group="availability",outcome="applied",type="receipt.posted"}'
    )
    assert outcome in text
    assert 'tally_event_handler_seconds_count{group="availability",type="receipt.posted"}' in text
