"""Durable runs, the recording side: what an execution is given (its journal) and what it records.

Every execution of a durable run calls the handler from the top; the steps earlier executions
recorded (``Step`` rows, in order) travel with the request as its journal and are replayed; each new
outcome the code produces is sent back over the runner's channel and handed to this execution's
``Session``, which stores it in PostgreSQL and commits (synchronously) before it answers: the code
goes on only with outcomes that survive a crash. A wait (a sleep, a child invocation, a fan-out, an
event) with no outcome yet is recorded with what will resolve it (a timer, the children, the event's
name and key), and the answer tells the code to stop.

Every record is fenced by the attempt (a superseded execution's records are refused) and checked
(``jobs.steprecords``): a record that breaks a rule ends the run for good with that error. What an
execution's end means for its run is in ``jobs.services.steps``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from lambdasite.caching import after_commit, best_effort
from lambdasite.exceptions import ApplicationError
from sandbox.jsonsafe import scrub

from .. import events, steprecords
from ..models import Job, Status, Step, Trigger
from ..steprecords import Record, Refused
from . import submit
from .eventwaits import event_lock, event_timeout_error, event_waiting_for

log = logging.getLogger("lambdasite.jobs")

State = Step.State
# what a run's children are made from: (tenant, function, qualifier, [args, ...]) -> one spec per call.
# Set by the functions app (jobs never import it); raises ApplicationError for a call it refuses.
ChildSpecs = Callable[..., list[submit.JobSpec]]
_child_specs: ChildSpecs | None = None


def child_specs_set(provider: ChildSpecs) -> None:
    """The functions app says how an ``invoke`` or ``map`` names its children (at its ``ready``)."""
    global _child_specs
    _child_specs = provider


# -- the journal -------------------------------------------------------------------------------


def journal_entry(step: Step) -> dict:
    """A recorded step as the code's context replays it."""
    return {
        "seq": step.seq,
        "name": step.name,
        "kind": step.kind,
        "status": step.status,
        "result": step.result,
        "error": step.error,
        "attempts": step.attempts,
    }


def outcome(step: Step) -> dict:
    """A resolved wait, as the answer to a record that found it resolved."""
    return {"status": step.status, "result": step.result, "error": step.error}


def run_deadline(job: Job) -> datetime:
    """When a run's lifetime (``Quota.max_run_lifetime_s``, from its submission) ends."""
    return job.created_at + timedelta(seconds=job.tenant.quota.max_run_lifetime_s)


class _Superseded(Exception):
    """The execution is no longer the run's current attempt (or the run was cancelled)."""


# the fence, and the commit made durable, in one statement (as rows.locked_job does for a finish):
# FOR SHARE, so the claim of a newer attempt waits for a record being stored, and a zombie's is refused
_FENCE_SQL = (
    "SELECT set_config('synchronous_commit', 'on', true) FROM jobs_job"
    " WHERE id = %s AND attempts = %s AND status = %s AND NOT cancel_requested FOR SHARE"
)


# a new step's result under the fence, in one statement (its own transaction: one round trip)
_RESULT_SQL = """
WITH fence AS (
    SELECT set_config('synchronous_commit', 'on', true) FROM jobs_job
    WHERE id = %(job)s AND attempts = %(attempt)s AND status = %(running)s AND NOT cancel_requested
    FOR SHARE
)
INSERT INTO jobs_step (job_id, seq, name, kind, status, input, result, error, attempts, size, wake_at,
                       event, key, event_id, started_at, finished_at)
SELECT %(job)s, %(seq)s, %(name)s, 'step', %(status)s, %(input)s, %(result)s, NULL, %(attempts)s, %(size)s,
       NULL, '', '', NULL, %(started_at)s, %(finished_at)s
FROM fence
RETURNING 1
"""


def _prep(name: str, value):
    """A value for a Step column, adapted as the ORM adapts it (jsonb)."""
    return Step._meta.get_field(name).get_db_prep_save(value, connection)


class Session:
    """One execution's records: ``__call__(payload) -> answer`` stores each (the sandbox calls it for
    every ``S`` frame, in order, and sends the answer back). Afterwards ``suspended`` says whether the
    execution stopped at a wait, ``fatal`` the error a refused record ends the run with."""

    def __init__(self, job: Job, attempt_number: int) -> None:
        steps = list(Step.objects.filter(job_id=job.id).order_by("seq"))
        self.journal = tuple(journal_entry(step) for step in steps)
        self.state = steprecords.Journal(
            names={s.seq: (s.name, s.kind) for s in steps},
            count=len(steps),
            bytes=sum(s.size for s in steps),
            sizes={s.seq: s.size for s in steps},
        )
        if steps and steps[-1].status in (State.WAITING, State.RETRYING):
            self.state.open_seq, self.state.open_attempts = steps[-1].seq, steps[-1].attempts
        self.job = job
        self.attempt_number = attempt_number
        self.quota = job.tenant.quota
        self.deadline = run_deadline(job)
        self.suspended = False
        self.fatal: dict | None = None
        self.records = 0

    def __call__(self, payload: bytes) -> dict:
        self.records += 1
        if self.fatal is not None or self.suspended:  # the execution is over: nothing more is stored
            return {"fatal": self.fatal or Refused("RecordRefused", "the run is suspended").error}
        try:
            record = steprecords.parse(payload)
            again = self.state.place(record)
            record = self.state.tries(record, again=again)
            self.state.check_limits(
                record,
                again=again,
                max_steps=self.quota.max_steps_per_run,
                max_bytes=self.quota.max_recorded_bytes_per_run,
            )
            if record.kind == "step" and record.ok and not again and not connection.in_atomic_block:
                answer, still_open = self._store_result(record)  # the common record: one statement
            else:
                answer, still_open = self._store(record, again)
        except Refused as exc:
            self.fatal = exc.error
            log.info(
                "durable record refused: %s",
                exc.message,
                extra={"event": "record_refused", "job_id": str(self.job.id), "type": exc.type},
            )
            return {"fatal": exc.error}
        except _Superseded:
            return {"stop": True}
        self.state.add(record, again=again, still_open=still_open)
        self.suspended = self.suspended or bool(answer.get("suspend"))
        return answer

    def _store_result(self, record: Record) -> tuple[dict, bool]:
        """A new step's result: the fence and the insert in one statement, its own transaction,
        committed synchronously (what ``_store`` does in four round trips for it)."""
        now = timezone.now()
        if now > self.deadline:
            raise Refused("RunLifetimeExceeded", self._lifetime_message())
        values = {
            "job": self.job.id,
            "attempt": self.attempt_number,
            "running": Status.RUNNING,
            "seq": record.seq,
            "name": record.name,
            "status": State.SUCCEEDED,
            "input": _prep("input", record.terms),
            "result": _prep("result", scrub(record.result)),
            "attempts": record.attempt,
            "size": record.size,
            "started_at": now - timedelta(milliseconds=record.ms),
            "finished_at": now,
        }
        try:
            with connection.cursor() as cursor:
                cursor.execute(_RESULT_SQL, values)
                stored = cursor.fetchone() is not None
        except IntegrityError:
            raise Refused("DeterminismError", f"the step {record.name!r} is recorded twice") from None
        if not stored:
            raise _Superseded()
        best_effort(
            "telling pages of a recorded step",
            events.steps_changed,
            job_id=self.job.id,
            tenant_id=self.job.tenant_id,
        )
        return {"ok": True}, False

    @transaction.atomic
    def _store(self, record: Record, again: bool) -> tuple[dict, bool]:
        """Store one record under the fence. -> (the answer, whether its step stays open)."""
        if record.kind == "event":  # before the fence: every event's writer takes them in this order
            event_lock(self.job.tenant_id, record.terms["event"], record.terms["key"])
        with connection.cursor() as cursor:
            cursor.execute(_FENCE_SQL, [self.job.id, self.attempt_number, Status.RUNNING])
            if cursor.fetchone() is None:
                raise _Superseded()
        now = timezone.now()
        if now > self.deadline:
            raise Refused("RunLifetimeExceeded", self._lifetime_message())
        if again and record.kind in steprecords.WAITS:
            step = Step.objects.get(job_id=self.job.id, seq=record.seq)  # resolved meanwhile?
            if step.status == State.WAITING:
                return {"suspend": True}, True
            return {"outcome": outcome(step)}, False
        answer, still_open = getattr(self, f"_{record.kind}")(record, now, again)
        after_commit(
            "telling pages of a recorded step",
            events.steps_changed,
            job_id=self.job.id,
            tenant_id=self.job.tenant_id,
        )
        return answer, still_open

    def _lifetime_message(self) -> str:
        return f"the run would outlive its lifetime of {self.quota.max_run_lifetime_s} s (max_run_lifetime_s)"

    def _write(self, record: Record, again: bool, now: datetime, **fields) -> None:
        fields = {"size": record.size, "finished_at": now, "wake_at": None, **fields}
        for name in ("result", "error", "input"):
            if name in fields:
                fields[name] = scrub(fields[name])  # jsonb refuses NUL and lone surrogates
        started = fields.pop("started_at", now)
        if again:  # its next try, or its outcome: it started with its first try
            Step.objects.filter(job_id=self.job.id, seq=record.seq).update(**fields)
            return
        try:  # no savepoint: a refusal rolls the whole record back anyway
            Step.objects.create(
                job_id=self.job.id,
                seq=record.seq,
                name=record.name,
                kind=record.kind,
                started_at=started,
                **fields,
            )
        except IntegrityError:
            raise Refused("DeterminismError", f"the step {record.name!r} is recorded twice") from None

    # -- each kind -------------------------------------------------------------------------------

    def _step(self, record: Record, now: datetime, again: bool) -> tuple[dict, bool]:
        started = now - timedelta(milliseconds=record.ms)
        common = {"input": record.terms, "attempts": record.attempt, "started_at": started}
        if record.ok:
            self._write(
                record, again, now, status=State.SUCCEEDED, result=record.result, error=None, **common
            )
            return {"ok": True}, False
        if record.attempt <= record.terms["retries"]:
            at = steprecords.retry_at(now, attempt=record.attempt, backoff_s=record.terms["backoff_s"])
            if at <= self.deadline:
                self._write(
                    record, again, now, status=State.RETRYING, error=record.error, wake_at=at, **common
                )
                return {"suspend": True}, True
        self._write(record, again, now, status=State.FAILED, error=record.error, **common)
        return {"ok": True}, False

    def _sleep(self, record: Record, now: datetime, again: bool) -> tuple[dict, bool]:
        until = steprecords.sleep_until(now, record.terms)
        if until > self.deadline:
            raise Refused("RunLifetimeExceeded", self._lifetime_message())
        terms = {"until": until.isoformat()}
        if until <= now:
            self._write(record, again, now, status=State.SUCCEEDED, input=terms)
            return {"outcome": {"status": State.SUCCEEDED, "result": None, "error": None}}, False
        self._write(record, again, now, status=State.WAITING, input=terms, wake_at=until, finished_at=None)
        return {"suspend": True}, True

    def _event(self, record: Record, now: datetime, again: bool) -> tuple[dict, bool]:
        terms = record.terms
        timeout = terms["timeout_s"]
        wake = self.deadline if timeout is None else min(self.deadline, now + timedelta(seconds=timeout))
        found = event_waiting_for(self.job, terms["event"], terms["key"])
        fields = {"input": terms, "event": terms["event"], "key": terms["key"]}
        if found is not None:
            self._write(
                record, again, now, status=State.SUCCEEDED, result=found.data, event_id=found.id, **fields
            )
            return {"outcome": {"status": State.SUCCEEDED, "result": found.data, "error": None}}, False
        if wake <= now:
            error = event_timeout_error(terms)
            self._write(record, again, now, status=State.FAILED, error=error, **fields)
            return {"outcome": {"status": State.FAILED, "result": None, "error": error}}, False
        self._write(record, again, now, status=State.WAITING, wake_at=wake, finished_at=None, **fields)
        return {"suspend": True}, True

    def _invoke(self, record: Record, now: datetime, again: bool) -> tuple[dict, bool]:
        return self._children(record, now, again)

    def _map(self, record: Record, now: datetime, again: bool) -> tuple[dict, bool]:
        limit = self.quota.max_children_per_map
        if len(record.terms["calls"]) > limit:
            raise Refused(
                "MapTooLarge", f"a map may start {limit} children (this tenant's max_children_per_map)"
            )
        return self._children(record, now, again)

    def _children(self, record: Record, now: datetime, again: bool) -> tuple[dict, bool]:
        terms = record.terms
        calls = terms["calls"]
        asked = {"function": terms["function"], "qualifier": terms["qualifier"], "count": len(calls)}
        if not calls:  # a map of nothing: done
            self._write(record, again, now, status=State.SUCCEEDED, input=asked, result=[])
            return {"outcome": {"status": State.SUCCEEDED, "result": [], "error": None}}, False
        try:
            specs = self._child_specs(terms)
        except ApplicationError as exc:
            error = {"type": type(exc).__name__, "message": exc.message, "traceback": ""}
            self._write(record, again, now, status=State.FAILED, input=asked, error=error)
            return {"outcome": {"status": State.FAILED, "result": None, "error": error}}, False
        self._write(
            record, again, now, status=State.WAITING, input=asked, wake_at=self.deadline, finished_at=None
        )
        children_create(parent=self.job, step=record, specs=specs)
        return {"suspend": True}, True

    def _child_specs(self, terms: dict) -> list[submit.JobSpec]:
        if _child_specs is None:
            raise ApplicationError("this process cannot start children (no functions app)")
        tenant = self.job.tenant
        specs = _child_specs(
            tenant=tenant, function=terms["function"], qualifier=terms["qualifier"], calls=terms["calls"]
        )
        return [submit.job_spec_validate(tenant=tenant, spec=spec) for spec in specs]


def children_create(*, parent: Job, step: Record, specs: list[submit.JobSpec]) -> list[Job]:
    """A run's children for its step, in this transaction: admitted with their parent (no rate or
    budget of their own), dispatched like any job, each naming its parent, step and place."""
    tenant = parent.tenant
    origin = submit.Origin(Trigger.PARENT, step.name)
    jobs = Job.objects.bulk_create(
        [
            submit._new_job(
                tenant, None, spec, origin, parent_id=parent.id, parent_step=step.seq, child_index=index
            )
            for index, spec in enumerate(specs)
        ]
    )
    submit._submitted_after_commit(tenant, jobs)
    return jobs
