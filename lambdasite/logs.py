"""JSON log lines: one object per line, with job_id/attempt/tenant when a record carries them."""

from __future__ import annotations

import json
import logging
import time

CONTEXT_FIELDS = (
    "job_id",
    "attempt",
    "tenant",
    "event",
    "status",
    "runtime",
    "worker",
    "duration_ms",
    "count",
    "retries_due",
    "redispatched",
    "leases_expired",
    "log_lines",
    "log_bytes",
    "dropped_bytes",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
