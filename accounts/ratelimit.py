"""Token buckets in Redis, exact under concurrency: tenants' submissions, sign-in attempts.

The whole check-and-take runs as one Lua script, so concurrent requests on any
number of web processes can never take more tokens than the bucket holds. The
bucket holds ``per_minute`` tokens and refills continuously at ``per_minute/60``
per second, using Redis's own clock.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

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


# A tenant's bucket (KEYS[2]) and a second bucket (KEYS[3], a route's) taken together: a token from each,
# or from neither. With ARGV[7] = "1", refused first (taking nothing) while the counter KEYS[1] is missing
# ({"none"}) or at the limit ARGV[4] ({"over", counter}). Else {"ok" | "rate" | "also", wait, counter}:
# "also" when the second bucket is the one short (it is looked at first).
TAKE_BOTH = """
local counter = false
if ARGV[7] == '1' then
  counter = redis.call('GET', KEYS[1])
  if counter == false then
    return {'none'}
  end
  if tonumber(counter) >= tonumber(ARGV[4]) then
    return {'over', counter}
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local want = tonumber(ARGV[3])
local function level(key, capacity, rate)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil then
    return capacity
  end
  return math.min(capacity, tokens + math.max(0, now - ts) * rate)
end
local c1, r1, c2, r2 = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5]), tonumber(ARGV[6])
local second = level(KEYS[3], c2, r2)
if second < want then
  return {'also', tostring((want - second) / r2), counter or '0'}
end
local first = level(KEYS[2], c1, r1)
if first < want then
  return {'rate', tostring((want - first) / r1), counter or '0'}
end
redis.call('HSET', KEYS[2], 'tokens', tostring(first - want), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[2], math.ceil(c1 / r1) + 60)
redis.call('HSET', KEYS[3], 'tokens', tostring(second - want), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[3], math.ceil(c2 / r2) + 60)
return {'ok', '0', counter or '0'}
"""


@dataclass(frozen=True)
class Bucket:
    """A bucket taken in the same call as a tenant's submissions (a route's requests per minute)."""

    name: str
    per_minute: int
    what: str  # what its 429 says is over the limit: "requests per minute to this route"


@functools.lru_cache(maxsize=4)
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


def take_both(
    *,
    bucket: str,
    per_minute: int,
    also: Bucket,
    counter_key: str | None = None,
    limit: float = 0.0,
    count: int = 1,
) -> tuple[str, int, float | None]:
    """``take_within`` (``take`` without ``counter_key``) of ``bucket`` and ``also`` together: a token
    from each or from neither, in one round trip. -> ("ok" | "rate" | "also" | "over" | "none",
    seconds to wait when "rate" or "also", the counter)."""
    if per_minute <= 0 or count > per_minute:
        return "rate", 60, None
    if also.per_minute <= 0 or count > also.per_minute:
        return "also", 60, None
    conn = get_redis()
    reply = _registered(conn, TAKE_BOTH)(
        keys=[counter_key or "", f"lambdasite:rate:{bucket}", f"lambdasite:rate:{also.name}"],
        args=[
            per_minute,
            per_minute / 60.0,
            count,
            repr(float(limit)),
            also.per_minute,
            also.per_minute / 60.0,
            "1" if counter_key else "0",
        ],
        client=conn,
    )
    kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
    if kind == "none":
        return "none", 0, None
    if kind == "over":
        return "over", 0, float(reply[1])
    _, wait, counter = reply
    return kind, (max(1, math.ceil(float(wait))) if kind != "ok" else 0), float(counter)


def peek(*, bucket: str, per_minute: int) -> float:
    """Tokens left in the bucket now (without taking any): the dashboard's rate bar."""
    conn = get_redis()
    (seconds, micros), (tokens, ts) = conn.time(), conn.hmget(f"lambdasite:rate:{bucket}", "tokens", "ts")
    if tokens is None or ts is None:
        return float(per_minute)
    now = seconds + micros / 1_000_000
    return min(float(per_minute), float(tokens) + max(0.0, now - float(ts)) * per_minute / 60.0)
