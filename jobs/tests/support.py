"""Helpers the jobs tests share: sample jobs, a background worker thread, polling with a deadline."""

from __future__ import annotations

import threading
import time

from django.db import connection

from jobs import execution
from jobs.models import Job

FAIL = {"runtime": "python", "code": "def main():\n    raise RuntimeError('always')\n"}
QUICK = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}
SLEEPY = {
    "runtime": "python",
    "code": "import time\ndef main(s):\n    print('sleeping', flush=True)\n    "
    "time.sleep(s)\n    return 'woke'\n",
    "args": [30],
    "timeout_ms": 60000,
}


class ThreadWorker:
    """Runs waiting jobs in a background thread (RQ's worker loop needs the main thread for signals)."""

    def __init__(self, sandbox_pool) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                ids = list(
                    Job.objects.filter(status__in=["queued", "dispatched"]).values_list("id", flat=True)
                )
                for job_id in ids:
                    execution.job_execute(job_id=job_id)
                self.stop.wait(0.02)
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def wait_for(predicate, timeout: float = 20.0, step: float = 0.05):
    """Poll ``predicate`` until it is true (for things done by other threads or processes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")
