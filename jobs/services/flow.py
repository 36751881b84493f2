"""The general slot filling, for a tenant with a function that has a flow-control limit
(max_concurrency, reserved_concurrency, concurrency_key): read what is in flight, fetch a bounded
set of candidates in one statement, choose with ``jobs.slots``, mark the chosen dispatched.

Called by ``dispatch._fill_locked`` after it took the tenant's fill lock, so the counts read here are
exact and nothing else dispatches this tenant's jobs meanwhile. Tenants without limits never come
here (the three-statement fast path).

The candidates are bounded however long the backlog is, each part read from the front of an index
and stopped at what could be taken:
- jobs of no limited function: inline jobs (job_waiting_inline), and each function without limits
  (the functions with waiting jobs found by skipping through job_waiting_lane one function at a
  time), at most the unreserved slots left from each, the best of them kept;
- each limited function without a key: at most the slots it could take;
- each keyed function: its keys with waiting jobs, found by skipping through the lane index one key
  at a time (a key's flood costs one step, not one per job), and from each key at most its free
  places, with each job's round (its key's in-flight jobs + its place) so the fairest come first."""

from __future__ import annotations

from collections import Counter

from ..slots import Candidate, Slots

_COLUMNS = "id, function_id, concurrency_key, priority, next_attempt_at, created_at"
_ORDER = "ORDER BY priority DESC, next_attempt_at, created_at"
# due, and placed in a pool with a live worker (null: every pool; dispatch.LIVE_POOL)
_DUE = (
    "status = %(queued)s AND next_attempt_at <= %(now)s"
    " AND (%(live)s::text[] IS NULL OR pool = ANY(%(live)s::text[]))"
)
# what both fills set and return: a job dispatched in its home pool says so (an overflow said why)
PLACED = "placed_by = COALESCE(NULLIF(placed_by, ''), 'home')"
RETURNED = "id, attempts, timeout_ms, memory_mb, priority, next_attempt_at, created_at, pool"

# the lane index's key: an equality on it keeps the index's order (models.Job's job_waiting_lane)
_KEY = "COALESCE(concurrency_key, '')"

# inline jobs (job_waiting_inline), and each function without limits that has waiting jobs, found by
# skipping through job_waiting_lane one function at a time: never a walk past a limited function's backlog
_OTHERS = f"""(WITH RECURSIVE fns(f) AS (
   (SELECT function_id FROM jobs_job WHERE tenant_id = %(tenant)s AND status = %(queued)s
    AND function_id IS NOT NULL ORDER BY function_id LIMIT 1)
   UNION ALL
   SELECT (SELECT j.function_id FROM jobs_job j WHERE j.tenant_id = %(tenant)s AND j.status = %(queued)s
           AND j.function_id > fns.f ORDER BY j.function_id LIMIT 1)
   FROM fns WHERE fns.f IS NOT NULL
 )
 SELECT o.*, 0 FROM (
   (SELECT {_COLUMNS} FROM jobs_job WHERE tenant_id = %(tenant)s AND function_id IS NULL AND {_DUE}
    {_ORDER} LIMIT %(others)s)
   UNION ALL
   SELECT w.* FROM fns CROSS JOIN LATERAL (
     SELECT {_COLUMNS} FROM jobs_job WHERE tenant_id = %(tenant)s AND function_id = fns.f
     AND {_KEY} = '' AND {_DUE} {_ORDER} LIMIT %(others)s
   ) w WHERE fns.f IS NOT NULL AND NOT fns.f = ANY(%(limited)s)
 ) o {_ORDER} LIMIT %(others)s)"""

_FUNCTION = f"""(SELECT {_COLUMNS}, 0 FROM jobs_job
 WHERE tenant_id = %(tenant)s AND function_id = %(f{{i}})s AND {_KEY} = '' AND {_DUE}
 {_ORDER} LIMIT %(room{{i}})s)"""

# one key per step of the recursion (an index probe each), then each key's first jobs
_KEYED = f"""(WITH RECURSIVE lanes{{i}}(k) AS (
   (SELECT {_KEY}::text FROM jobs_job WHERE tenant_id = %(tenant)s AND function_id = %(f{{i}})s
    AND status = %(queued)s ORDER BY {_KEY} LIMIT 1)
   UNION ALL
   SELECT (SELECT COALESCE(j.concurrency_key, '')::text FROM jobs_job j WHERE j.tenant_id = %(tenant)s
           AND j.function_id = %(f{{i}})s AND j.status = %(queued)s AND COALESCE(j.concurrency_key, '') > l.k
           ORDER BY COALESCE(j.concurrency_key, '') LIMIT 1)
   FROM lanes{{i}} l WHERE l.k IS NOT NULL
 )
 SELECT w.id, w.function_id, w.concurrency_key, w.priority, w.next_attempt_at, w.created_at,
        COALESCE(c.n, 0) + w.place AS lane_round
 FROM lanes{{i}} l
 CROSS JOIN LATERAL (
   SELECT {_COLUMNS}, row_number() OVER ({_ORDER}) AS place FROM jobs_job
   WHERE tenant_id = %(tenant)s AND function_id = %(f{{i}})s AND {_KEY} = l.k AND {_DUE}
   {_ORDER} LIMIT %(lane{{i}})s
 ) w
 LEFT JOIN unnest(%(keys{{i}})s::text[], %(counts{{i}})s::bigint[]) AS c(k, n) ON c.k = l.k
 WHERE l.k IS NOT NULL AND COALESCE(c.n, 0) + w.place <= %(cap{{i}})s
 ORDER BY w.priority DESC, lane_round, w.next_attempt_at, w.created_at LIMIT %(room{{i}})s)"""

_DISPATCH_SQL = f"""
UPDATE jobs_job SET status = %(dispatched)s, dispatched_at = %(now)s, {PLACED}
WHERE id = ANY(%(ids)s) AND status = %(queued)s
RETURNING {RETURNED}
"""


def fill_limited(cursor, params: dict, *, cap: int) -> list[tuple]:
    """Dispatch what the tenant's limits allow now; -> the dispatched rows in dispatch order
    (id, attempts, timeout_ms, memory_mb, priority, next_attempt_at, created_at, pool)."""
    statuses = {"dispatched": params["dispatched"], "running": params["running"]}
    slots = Slots.read(cursor, tenant_id=params["tenant"], cap=cap, statuses=statuses)
    if slots.free() <= 0:
        return []
    chosen = slots.choose(candidates(cursor, params, slots))
    if not chosen:
        return []
    cursor.execute(_DISPATCH_SQL, {**params, "ids": [c.id for c in chosen]})
    place = {c.id: i for i, c in enumerate(chosen)}
    return sorted(cursor.fetchall(), key=lambda row: place[row[0]])


def candidates(cursor, params: dict, slots: Slots) -> list[Candidate]:
    """The waiting jobs that could take a slot now, each with its round (see the module's note)."""
    sql, values = _candidates_query(params, slots)
    if not sql:
        return []
    cursor.execute(sql, values)
    rows = [Candidate(*row[:6], round=row[6]) for row in cursor.fetchall()]
    unkeyed = sorted(
        (c for c in rows if not slots.lane_key(c.function_id, c.key)[0]),
        key=lambda c: (-c.priority, c.next_attempt_at, c.created_at),
    )
    base = slots.of_lane((None, None))
    rounds = {c.id: base + place for place, c in enumerate(unkeyed, start=1)}
    return [
        c if c.id not in rounds else Candidate(*_fields(c), round=rounds[c.id])
        for c in rows  # (a keyed lane's round came from the query)
    ]


def _fields(c: Candidate) -> tuple:
    return (c.id, c.function_id, c.key, c.priority, c.next_attempt_at, c.created_at)


def _candidates_query(params: dict, slots: Slots) -> tuple[str, dict]:
    values = {**params, "limited": list(slots.functions)}
    parts = []
    others = min(slots.free(), slots.shared_free())
    if others > 0:
        parts.append(_OTHERS)
        values["others"] = others
    for i, (function_id, limits) in enumerate(sorted(slots.functions.items())):
        room = slots.function_room(function_id)
        if room <= 0:
            continue
        values[f"f{i}"], values[f"room{i}"] = function_id, room
        if not limits.keyed:
            parts.append(_FUNCTION.format(i=i))
            continue
        in_flight = Counter()
        for (f, k), n in slots.in_flight.items():
            if f == function_id:
                in_flight[k or ""] += n
        values[f"keys{i}"], values[f"counts{i}"] = list(in_flight), list(in_flight.values())
        values[f"cap{i}"], values[f"lane{i}"] = limits.per_key, min(limits.per_key, room)
        parts.append(_KEYED.format(i=i))
    return "\nUNION ALL\n".join(parts), values
