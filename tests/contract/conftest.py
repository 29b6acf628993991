"""The contract fuzzers (Schemathesis) change platform-wide configuration as they go
(channel strategies, rules, safety stock, ...): they get a platform of their own, so no
end-to-end or security test inherits what they left behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tally.launcher import launch
from tests.support.platform import PlatformClient
from tests.support.ports import free_ports


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformClient]:
    launched = launch(tmp_path_factory.mktemp("contract-platform"), ports=free_ports())
    try:
        yield PlatformClient(launched)
    finally:
        launched.platform.stop()
