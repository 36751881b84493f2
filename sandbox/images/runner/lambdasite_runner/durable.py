"""The context a durable run's Python handler gets first (``def main(ctx, order)``): steps recorded
once and replayed, sleeps, child invocations, fan-out and waits for events.

Runs in the job's process. Every execution of a run calls the handler from the top; ``journal`` holds
what earlier executions recorded, by position. At each position the code must ask for the step it
asked for before (same name, same kind), or the run fails with a ``DeterminismError``. A step with a
recorded outcome returns it without running; a new one runs and its outcome is sent to the host on
the control socket (fd 5, length-prefixed JSON), which stores it before answering: the code goes on
only once what it has seen is durable. A wait with no outcome yet is recorded the same way, then the
process reports and exits at once (nothing after the wait runs, no ``finally`` of the user's runs):
the run is suspended and executed again when the wait is over.

The host checks everything it is sent: this module is the user's side of the protocol."""

import datetime
import json
import struct
import time

from .wire import read_exact, write_all

CTL_FD = 5
NAME_MAX = 200


class StepFailed(Exception):
    """A step's function raised (after its retries), or a wait ended in failure: ``error`` is what it
    recorded (``type``, ``message``, ``traceback``)."""

    def __init__(self, step, error):
        self.step = step
        self.error = error or {}
        super().__init__("step %r failed: %s: %s" % (step, self.error.get("type"), self.error.get("message")))


class ChildFailed(StepFailed):
    """An ``invoke`` whose child did not succeed, or a ``map`` with at least one such child:
    ``results`` holds every child's result in order (None for the failed ones), ``errors`` every
    child's error (None for the ones that succeeded)."""

    def __init__(self, step, error, results=None, errors=None):
        super().__init__(step, error)
        self.results = results
        self.errors = errors


class EventTimeout(StepFailed):
    """``wait_for_event`` saw no matching event before its timeout."""


class StepNameError(ValueError):
    """A step name that is not a non-empty string of at most 200 characters, or is used twice."""


class Context:
    StepFailed = StepFailed
    ChildFailed = ChildFailed
    EventTimeout = EventTimeout

    def __init__(self, durable, report):
        """``durable``: ``{"run": id, "journal": [...]}``; ``report(payload)`` ends the process with
        ``payload`` as its result frame (it never returns)."""
        self.run_id = str(durable.get("run") or "")
        self._journal = {}
        for entry in durable.get("journal") or ():
            self._journal[int(entry["seq"])] = entry
        self._report = report
        self._seq = 0
        self._names = set()
        self._current = None
        self._attempt = None

    # -- what the code reads ---------------------------------------------------------

    @property
    def step_id(self):
        """Inside a step's function: ``<run id>:<step name>``, the same on every try and every
        execution (an idempotency key for what the step sends out); None outside a step."""
        return None if self._current is None else "%s:%s" % (self.run_id, self._current)

    @property
    def attempt(self):
        """Inside a step's function: which try this is (from 1); None outside a step."""
        return self._attempt

    # -- steps -----------------------------------------------------------------------

    def step(self, name, fn, retries=0, backoff_s=1.0):
        """Run ``fn()`` once and record its JSON result; later executions get the recorded result
        without running it. If it raises, it is tried again up to ``retries`` more times, each after a
        suspension of ``backoff_s`` x 2^(try-1) seconds; then ``StepFailed`` is raised (and on every
        later execution too)."""
        seq, entry = self._position(name, "step")
        attempt = 1
        if entry is not None:
            if entry["status"] == "succeeded":
                return entry.get("result")
            if entry["status"] == "failed":
                raise StepFailed(name, entry.get("error"))
            attempt = int(entry.get("attempts") or 0) + 1  # retrying: the next try is due
        terms = {"seq": seq, "name": name, "kind": "step", "attempt": attempt}
        terms.update(retries=_number(retries, "retries"), backoff_s=_number(backoff_s, "backoff_s"))
        self._current, self._attempt = name, attempt
        started = time.monotonic()
        try:
            value = fn()
            if hasattr(value, "__await__"):
                value = _run_awaitable(value)
            text = json.dumps(value, allow_nan=False)
        except Exception as exc:  # noqa: BLE001 - the step's failure, recorded
            from .pychild import describe

            error = json.loads(describe(exc))["error"]
            terms.update(ok=False, error=error, ms=_ms(started))
            self._current = self._attempt = None
            if self._send(json.dumps(terms)).get("suspend"):
                self._suspend()
            raise StepFailed(name, error) from None
        finally:
            self._current = self._attempt = None
        terms.update(ok=True, ms=_ms(started))
        self._send(json.dumps(terms)[:-1] + ', "result": ' + text + "}")
        return json.loads(text)  # what a replay returns: the recorded JSON, not the object itself

    def sleep(self, name, seconds):
        """Suspend the run for ``seconds`` (it holds no worker meanwhile)."""
        self._wait(name, "sleep", {"seconds": _number(seconds, "seconds")})

    def sleep_until(self, name, when):
        """Suspend the run until ``when`` (an ISO 8601 time with an offset, or an aware datetime)."""
        if isinstance(when, datetime.datetime):
            if when.tzinfo is None:
                raise ValueError("sleep_until needs an aware datetime (with a time zone)")
            when = when.isoformat()
        if not isinstance(when, str):
            raise TypeError("sleep_until takes an ISO 8601 string or an aware datetime")
        self._wait(name, "sleep", {"until": when})

    def invoke(self, name, function, args=None, qualifier=None):
        """Invoke the deployed ``function`` (through ``qualifier``: a version or an alias) with
        ``args`` and return its result; the run is suspended until the child finishes. A child that
        does not succeed raises ``ChildFailed``."""
        terms = {"function": function, "args": list(args or []), "qualifier": qualifier}
        return self._wait(name, "invoke", _checked_json(terms))

    def map(self, name, function, items, qualifier=None):
        """Invoke ``function`` once per item of ``items`` (each a list of arguments, or one argument)
        and return their results in order; the run is suspended until every child finishes. If any
        does not succeed, ``ChildFailed`` carries ``results`` and ``errors`` (by position)."""
        calls = [list(item) if isinstance(item, (list, tuple)) else [item] for item in items]
        terms = {"function": function, "items": calls, "qualifier": qualifier}
        return self._wait(name, "map", _checked_json(terms))

    def wait_for_event(self, name, event, key=None, timeout_s=None):
        """Wait for ``POST /api/v1/events`` with this ``event`` and ``key`` (received since the run
        began, and not taken by an earlier wait of this run) and return its ``data``; raises
        ``EventTimeout`` after ``timeout_s`` seconds without one (None: the run's lifetime)."""
        terms = {"event": event, "key": "" if key is None else key}
        if timeout_s is not None:
            terms["timeout_s"] = _number(timeout_s, "timeout_s")
        return self._wait(name, "event", _checked_json(terms))

    # -- the protocol ------------------------------------------------------------------

    def _position(self, name, kind):
        if not isinstance(name, str) or not name or len(name) > NAME_MAX:
            raise StepNameError("a step name is a non-empty string of at most %d characters" % NAME_MAX)
        if name in self._names:
            raise StepNameError("the step name %r is used twice: names are unique within a run" % name)
        if self._current is not None:
            raise RuntimeError("ctx.%s inside the step %r: steps do not nest" % (kind, self._current))
        self._names.add(name)
        self._seq += 1
        entry = self._journal.get(self._seq)
        if entry is not None and (entry.get("name") != name or entry.get("kind") != kind):
            self._fail(
                "DeterminismError",
                "step %d of this run is recorded as %r (%s), but the code now asks for %r (%s) at that "
                "position: a durable function must ask for the same steps in the same order every time "
                "it runs (branch only on arguments and on what steps return)"
                % (self._seq, entry.get("name"), entry.get("kind"), name, kind),
            )
        return self._seq, entry

    def _wait(self, name, kind, terms):
        seq, entry = self._position(name, kind)
        if entry is None or entry.get("status") == "waiting":
            record = dict(terms, seq=seq, name=name, kind=kind)
            reply = self._send(json.dumps(record))
            if "outcome" not in reply:
                self._suspend()
            entry = reply["outcome"]
        status, error = entry.get("status"), entry.get("error")
        if status == "succeeded":
            return entry.get("result")
        if kind in ("invoke", "map"):
            raise ChildFailed(name, error, entry.get("result"), (error or {}).get("errors"))
        if kind == "event":
            raise EventTimeout(name, error)
        raise StepFailed(name, error)

    def _send(self, text):
        data = text.encode("utf-8", "surrogatepass")
        try:
            write_all(CTL_FD, struct.pack(">I", len(data)) + data)
            (size,) = struct.unpack(">I", read_exact(CTL_FD, 4))
            reply = json.loads(read_exact(CTL_FD, size))
        except (OSError, EOFError, ValueError):
            self._fail("DurableChannelClosed", "the run's record channel closed")
        if reply.get("fatal"):
            fatal = reply["fatal"]
            self._fail(fatal.get("type") or "DurableError", fatal.get("message") or "")
        if reply.get("stop"):
            self._fail("Superseded", "this execution was superseded")
        return reply

    def _suspend(self):
        self._report(json.dumps({"ok": True, "result": None, "suspended": True}))

    def _fail(self, etype, message):
        from .pychild import error_payload

        self._report(error_payload(etype, message, ""))


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise TypeError("%s must be a number" % what)
    return value


def _checked_json(terms):
    try:
        return json.loads(json.dumps(terms, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError("arguments of a durable call must be JSON: %s" % exc) from None


def _ms(started):
    return round((time.monotonic() - started) * 1000.0, 3)


def _run_awaitable(value):
    import asyncio

    async def _await():
        return await value

    return asyncio.run(_await())
