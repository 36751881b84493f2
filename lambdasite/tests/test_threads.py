"""lambdasite.threads: one thread of a kind per process, made again when it is gone."""

from __future__ import annotations

import threading

from lambdasite.threads import ProcessThread


def test_it_makes_one_thread_on_first_use_and_another_only_when_it_is_gone():
    stop = threading.Event()
    made = []

    def make() -> threading.Thread:
        made.append(threading.Thread(target=stop.wait, daemon=True))
        return made[-1]

    thread = ProcessThread(make)
    assert thread.current() is None and made == []  # asking which exists makes none
    first = thread()
    assert thread() is first and thread.current() is first and first.is_alive() and len(made) == 1
    stop.set()
    first.join(2)
    stop.clear()
    second = thread()
    assert second is not first and second.is_alive() and len(made) == 2
    stop.set()
