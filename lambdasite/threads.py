"""A process's one background thread of a kind (the lease renewer, the live-events publisher):
made and started on first use, and again when it is no longer alive (it died, or the process forked)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T", bound=threading.Thread)


class ProcessThread(Generic[T]):
    """``thread()`` -> the running thread ``make`` made (and started), made again when it is gone."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._thread: T | None = None

    def __call__(self) -> T:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = self._make()
                self._thread.start()
            return self._thread

    def current(self) -> T | None:
        """The thread made last, alive or not, or None: never makes one."""
        return self._thread
