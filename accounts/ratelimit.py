"""Token buckets in Redis, exact under concurrency: tenants' submissions, sign-in attempts.

The whole check-and-take runs as one Lua script, so concurrent requests on any
number of web processes can never take more tokens than the bucket holds. The
bucket holds ``per_minute`` tokens and refills continuously at ``per_minute/60``
per second, using Redis's own clock.
"""

from __future__ import annotations

import functools
import math

from lambdasite.redis_client import get_redis

TAKE = """
local key = KEYS[1]
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= want then
  tokens = tokens - want
  allowed = 1
else
  wait = (want - tokens) / rate
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', key, math.ceil(capacity / rate) + 60)
return {allowed, tostring(wait)}
"""

# The same take, unless a counter (KEYS[2]) has reached a limit (ARGV[4]): a tenant's admission in one
# round trip. Returns {"none"} when the counter is missing (the caller seeds it and asks again),
# {"over", counter} when it is at the limit (no token taken), else {allowed, wait, counter}.
TAKE_WITHIN = """
local counter = redis.call('GET', KEYS[2])
if counter == false then
  return {'none'}
end
if tonumber(counter) >= tonumber(ARGV[4]) then
  return {'over', counter}
end
""" + TAKE.replace("return {allowed, tostring(wait)}", "return {allowed, tostring(wait), counter}")


@functools.lru_cache(maxsize=2)
def _registered(conn, script: str):
    """``script`` registered on ``conn`` (again when the client changed: tests swap it)."""
    return conn.register_script(script)


def tenant_bucket(tenant) -> str:
    """A tenant's submission bucket, by id: a slug can be renamed and reused."""
    return f"tenant:{tenant.id}"


def take(*, bucket: str, per_minute: int, count: int = 1) -> tuple[bool, int]:
    """Take ``count`` tokens. -> (allowed, seconds to wait before retrying when refused)."""
    if per_minute <= 0:
        return False, 60
    if count > per_minute:
        return False, 60  # can never fit in the bucket
    conn = get_redis()
    allowed, wait = _registered(conn, TAKE)(
        keys=[f"lambdasite:rate:{bucket}"], args=[per_minute, per_minute / 60.0, count], client=conn
    )
    return bool(allowed), max(1, math.ceil(float(wait)))


def take_within(
    *, bucket: str, per_minute: int, counter_key: str, limit: float, count: int = 1
) -> tuple[str, int, float | None]:
    """``take``, refused without taking when the number at ``counter_key`` has reached ``limit``.
    -> ("ok" | "rate" | "over" | "none", seconds to wait when "rate", the counter (None when "none"))."""
    if per_minute <= 0 or count > per_minute:
        return "rate", 60, None  # as take: the bucket can never hold it (the counter is not read)
    conn = get_redis()
    reply = _registered(conn, TAKE_WITHIN)(
        keys=[f"lambdasite:rate:{bucket}", counter_key],
        args=[per_minute, per_minute / 60.0, count, repr(float(limit))],
        client=conn,
    )
    kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
    if kind == "none":
        return "none", 0, None
    if kind == "over":
        return "over", 0, float(reply[1])
    allowed, wait, counter = reply
    return ("ok" if allowed else "rate"), max(1, math.ceil(float(wait))), float(counter)


def peek(*, bucket: str, per_minute: int) -> float:
    """Tokens left in the bucket now (without taking any): the dashboard's rate bar."""
    conn = get_redis()
    (seconds, micros), (tokens, ts) = conn.time(), conn.hmget(f"lambdasite:rate:{bucket}", "tokens", "ts")
    if tokens is None or ts is None:
        return float(per_minute)
    now = seconds + micros / 1_000_000
    return min(float(per_minute), float(tokens) + max(0.0, now - float(ts)) * per_minute / 60.0)
