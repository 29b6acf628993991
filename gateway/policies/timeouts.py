"""Upstream timeouts per route: ``TALLY_UPSTREAM_TIMEOUTS="orders=10,/erp/v1/reports=60"``.

A key is an API name (every route of that API) or a path prefix; the longest
matching prefix wins, then the API, then the forwarder's default (30 s).
"""

from __future__ import annotations


class UpstreamTimeouts:
    def __init__(self, table: dict[str, float]) -> None:
        self._by_api: dict[str, float] = {}
        self._prefixes: dict[str, list[tuple[str, float]]] = {}
        for key, seconds in table.items():
            if key.startswith("/"):
                api = key[1:].partition("/")[0]
                self._prefixes.setdefault(api, []).append((key.rstrip("/"), seconds))
            else:
                self._by_api[key] = seconds
        for prefixes in self._prefixes.values():
            prefixes.sort(key=lambda item: len(item[0]), reverse=True)

    def for_call(self, api: str, path: str) -> float | None:
        """Seconds, or None for the forwarder's default."""
        prefixes = self._prefixes.get(api)
        if prefixes:
            for prefix, seconds in prefixes:
                if path == prefix or path.startswith(prefix + "/"):
                    return seconds
        return self._by_api.get(api)
