"""An attempt's connections through the egress door, as the sandbox reported them: stored (at most
CONNECTIONS_RECORDED_PER_ATTEMPT rows, the rest counted, as are those the proxy only counted:
``RunResult.connections_unrecorded``) in the transaction that closes the attempt, and summed, with
the unrecorded ones' bytes, for usage, cost and metrics.

What the proxy recorded comes partly from the job (the host it asked for), so every string is cut
to its column and made storable (no NUL, no lone surrogate): a job cannot make its own attempt
unstorable through a connection."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection as db

import sandbox

from ..models import Connection

_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


@dataclass(frozen=True)
class EgressUse:
    """What an attempt moved through the door: connections by verdict (allowed, denied, and
    unrecorded: past the proxy's records, their verdict unknown) and the bytes of all of them."""

    verdicts: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    dropped: int = 0  # connections not recorded (past the proxy's or our cap)

    @property
    def bytes(self) -> int:
        return self.bytes_sent + self.bytes_received

    def __bool__(self) -> bool:
        return bool(self.verdicts or self.bytes or self.dropped)


NONE = EgressUse()


def _verdict(c: sandbox.Connection) -> str:
    return Connection.Verdict.ALLOWED if c.verdict == "allowed" else Connection.Verdict.DENIED


def egress_use(result: sandbox.RunResult) -> EgressUse:
    """Every connection of the attempt counted (recorded or only counted by the proxy), and the
    bytes of every one (the proxy reports the unrecorded ones' total)."""
    recorded = result.connections
    unrecorded = max(0, int(result.connections_unrecorded))
    if not recorded and not unrecorded:
        return NONE
    beyond_cap = max(0, len(recorded) - settings.CONNECTIONS_RECORDED_PER_ATTEMPT)
    verdicts = Counter(_verdict(c) for c in recorded)
    if unrecorded:
        verdicts["unrecorded"] += unrecorded
    return EgressUse(
        verdicts=dict(verdicts),
        bytes_sent=sum(max(0, c.bytes_sent) for c in recorded) + max(0, int(result.unrecorded_bytes_sent)),
        bytes_received=sum(max(0, c.bytes_received) for c in recorded)
        + max(0, int(result.unrecorded_bytes_received)),
        dropped=unrecorded + beyond_cap,
    )


def _text(value: str, limit: int) -> str:
    return _UNSTORABLE.sub("\ufffd", str(value))[:limit]


def connections_record(*, job_id, attempt_number: int, connections: Sequence[sandbox.Connection]) -> int:
    """Insert the attempt's connections (the job's row lock held: ``seq`` continues after the job's
    last one, across attempts), at most CONNECTIONS_RECORDED_PER_ATTEMPT. -> rows inserted."""
    real = list(connections[: settings.CONNECTIONS_RECORDED_PER_ATTEMPT])
    if not real:
        return 0
    with db.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs_connection WHERE job_id = %s", [job_id])
        offset = cursor.fetchone()[0]
    rows = [
        Connection(
            job_id=job_id,
            attempt=attempt_number,
            seq=offset + n,
            host=_text(c.host, 255),
            port=max(0, min(int(c.port), 65535)),
            address=_text(c.address, 64),
            verdict=_verdict(c),
            reason=_text(c.reason, 200),
            bytes_sent=max(0, int(c.bytes_sent)),
            bytes_received=max(0, int(c.bytes_received)),
            started_at=datetime.fromtimestamp(c.started_at, tz=UTC)
            if c.started_at > 0
            else datetime.now(UTC),
            duration_ms=max(0.0, float(c.duration_ms)),
        )
        for n, c in enumerate(real, start=1)
    ]
    Connection.objects.bulk_create(rows, batch_size=500)
    return len(rows)
