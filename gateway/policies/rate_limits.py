"""Rate limits per client by SLA tier, per second AND per minute (GCRA, see gcra.py).

Keyed on the client id of the VERIFIED token, never on a header a caller could set.
``internal`` clients are not limited. With ``TALLY_REDIS_URL`` the state lives in
Redis (one Lua script, so every gateway replica shares one budget per client);
without it, in this process. When Redis fails the gateway falls back to its own
in-process limiter for a second at a time (fail-open to per-replica limits, see
docs/decisions/0013).

Response fields follow draft-ietf-httpapi-ratelimit-headers-06: ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` (of the window closest to exhaustion)
and ``RateLimit-Policy`` (both windows, e.g. ``20;w=1, 600;w=60``).
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.policies.gcra import Decision, Window, evaluate
from shared.auth.principal import Principal

log = logging.getLogger("tally.gateway.ratelimit")

UNLIMITED_TIER = "internal"
SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US


class Limiter(Protocol):
    async def check(self, key: str, windows: tuple[Window, ...]) -> Decision: ...

    async def close(self) -> None: ...


class LocalLimiter:
    """The TATs of this process's clients in a dict; a sweep drops idle clients."""

    def __init__(self, max_clients: int = 100_000) -> None:
        self.max_clients = max_clients
        self._tats: dict[str, list[int]] = {}

    def check_now(self, key: str, windows: tuple[Window, ...]) -> Decision:
        now = time.time_ns() // 1000
        stored = self._tats.get(key)
        decision, new_tats = evaluate(now, stored or [None] * len(windows), windows)  # type: ignore[arg-type]
        if new_tats is not None:
            self._tats[key] = new_tats
            if len(self._tats) > self.max_clients:
                self._sweep(now)
        return decision

    async def check(self, key: str, windows: tuple[Window, ...]) -> Decision:
        return self.check_now(key, windows)

    def _sweep(self, now: int) -> None:
        idle = [key for key, tats in self._tats.items() if max(tats) <= now]
        for key in idle:
            del self._tats[key]

    async def close(self) -> None:
        return None


# The steps of gcra.evaluate, on Redis's clock (TIME) so replicas need not agree on
# theirs. KEYS[1]: the client's hash (field i = TAT of window i, microseconds);
# ARGV: limit1, period1_us, limit2, period2_us, ...
LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #ARGV / 2
local fields = {}
for i = 1, n do fields[i] = tostring(i) end
local stored = redis.call('HMGET', KEYS[1], unpack(fields))
local allowed = 1
local retry = 0
local new = {}
local best_remaining, best_limit, best_reset = -1, 0, 0
for i = 1, n do
  local limit = tonumber(ARGV[2 * i - 1])
  local period = tonumber(ARGV[2 * i])
  local interval = period / limit
  local tat = now
  if stored[i] then tat = tonumber(stored[i]) end
  if tat < now then tat = now end
  local new_tat = tat + interval
  local wait = new_tat - period - now
  local remaining, reset
  if wait > 0 then
    allowed = 0
    if wait > retry then retry = wait end
    remaining = 0
    reset = wait
  else
    remaining = math.floor((period - (new_tat - now)) / interval + 1e-9)
    reset = new_tat - now
  end
  new[i] = new_tat
  if best_remaining < 0 or remaining < best_remaining
     or (remaining == best_remaining and reset > best_reset) then
    best_remaining, best_limit, best_reset = remaining, limit, reset
  end
end
if allowed == 1 then
  local args = {}
  local longest = 0
  for i = 1, n do
    args[#args + 1] = fields[i]
    args[#args + 1] = string.format('%.0f', new[i])
    if new[i] - now > longest then longest = new[i] - now end
  end
  redis.call('HSET', KEYS[1], unpack(args))
  redis.call('PEXPIRE', KEYS[1], math.ceil(longest / 1000) + 1000)
  retry = 0
end
return {allowed, best_limit, best_remaining, math.ceil(best_reset / 1000000),
        math.ceil(retry / 1000000)}
"""


class RedisLimiter:
    """Shared by every replica; on a Redis failure the in-process limiter answers
    for ``pause_seconds`` before Redis is tried again (no per-call timeouts pile up)."""

    def __init__(
        self, url: str, *, fallback: LocalLimiter | None = None, pause_seconds: float = 1.0
    ) -> None:
        self.redis = aioredis.Redis.from_url(
            url, socket_timeout=0.25, socket_connect_timeout=0.25, retry_on_timeout=False
        )
        self.script = self.redis.register_script(LUA)  # EVALSHA, loading on NOSCRIPT
        self.fallback = fallback or LocalLimiter()
        self.pause_seconds = pause_seconds
        self._down_until = 0.0
        self._warned_at = 0.0

    async def check(self, key: str, windows: tuple[Window, ...]) -> Decision:
        if self._down_until and time.monotonic() < self._down_until:
            return self.fallback.check_now(key, windows)
        args: list[int] = []
        for window in windows:
            args += (window.limit, window.period_us)
        try:
            result = await self.script(keys=[f"tally:ratelimit:{key}"], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return self.fallback.check_now(key, windows)
        self._down_until = 0.0
        allowed, limit, remaining, reset, retry = (int(value) for value in result)
        return Decision(bool(allowed), limit, remaining, reset, retry)

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + self.pause_seconds
        if now - self._warned_at >= 10:
            self._warned_at = now
            log.warning("rate limits: Redis failed (%r); limiting in this process", exc)

    async def close(self) -> None:
        await self.redis.aclose()


class RateLimits:
    """Tier -> windows; answers a principal's call with a decision and its headers."""

    def __init__(self, tiers: dict[str, tuple[int, int]], limiter: Limiter) -> None:
        self.limiter = limiter
        self._windows = {
            tier: (Window(second, SECOND_US), Window(minute, MINUTE_US))
            for tier, (second, minute) in tiers.items()
        }
        self._policies = {
            tier: f"{second};w=1, {minute};w=60".encode()
            for tier, (second, minute) in tiers.items()
        }
        # A token without a known tier gets the smallest budget.
        self._default = min(tiers, key=lambda tier: tiers[tier])

    async def check(
        self, principal: Principal
    ) -> tuple[Decision, list[tuple[bytes, bytes]]] | None:
        """None for an unlimited client, else the decision and the response fields."""
        tier = principal.tier or self._default
        if tier == UNLIMITED_TIER:
            return None
        if tier not in self._windows:
            tier = self._default
        decision = await self.limiter.check(principal.client_id, self._windows[tier])
        headers = [
            (b"ratelimit-limit", str(decision.limit).encode()),
            (b"ratelimit-remaining", str(decision.remaining).encode()),
            (b"ratelimit-reset", str(decision.reset).encode()),
            (b"ratelimit-policy", self._policies[tier]),
        ]
        if not decision.allowed:
            headers.append((b"retry-after", str(decision.retry_after).encode()))
        return decision, headers

    async def close(self) -> None:
        await self.limiter.close()


def limiter_for(redis_url: str | None) -> Limiter:
    return RedisLimiter(redis_url) if redis_url else LocalLimiter()
