"""A function's flow-control settings (max_concurrency, reserved_concurrency, concurrency_key,
concurrency_per_key): checked as a whole, set at create or by PATCH; the slot filling enforces them
(jobs.services.flow).

Reservations are carved out of the tenant's cap, so together they must leave room: the sum of a
tenant's reservations stays at most its max_concurrency - 1 (inline jobs and functions without a
reservation can always run one). A changed concurrency_key re-keys the function's waiting jobs in the
same transaction, so each waits in the lane of the key it now has."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from accounts.models import Tenant
from jobs import concurrency_key
from jobs.models import Job, Status
from lambdasite.exceptions import ValidationFailed

from ..models import Function

UNSET = object()
FLOW_FIELDS = ("max_concurrency", "reserved_concurrency", "concurrency_key", "concurrency_per_key")
# waiting, not yet given a slot: their key decides their lane
_REKEYED = (Status.SCHEDULED, Status.QUEUED, Status.RETRYING)


@dataclass(frozen=True)
class FlowSettings:
    max_concurrency: int | None = None
    reserved_concurrency: int = 0
    concurrency_key: str = ""
    concurrency_per_key: int | None = None

    @classmethod
    def of(cls, function: Function) -> FlowSettings:
        return cls(*(getattr(function, f.name) for f in fields(cls)))

    def changed(self, **given) -> FlowSettings:
        """These settings with the ones given (UNSET: unchanged; None clears a ceiling or the key)."""
        given = {k: v for k, v in given.items() if v is not UNSET}
        if given.get("concurrency_key") is None and "concurrency_key" in given:
            given["concurrency_key"] = ""
        if given.get("reserved_concurrency") is None and "reserved_concurrency" in given:
            given["reserved_concurrency"] = 0
        if given.get("concurrency_key") == "" and "concurrency_per_key" not in given:
            given["concurrency_per_key"] = None  # no key: no per-key limit
        return replace(self, **given)


def _fail(field: str, message: str, **details) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"fields": {field: [message]}, **details})


def flow_check(*, tenant: Tenant, settings: FlowSettings, exclude=None) -> FlowSettings:
    """``settings`` made whole (a key's default per-key limit is 1) or a 400 naming the field. In a
    transaction: a reservation is checked under the tenant's lock."""
    if settings.max_concurrency is not None and settings.max_concurrency < 1:
        raise _fail("max_concurrency", "must be at least 1 (or none: no ceiling)")
    if settings.reserved_concurrency < 0:
        raise _fail("reserved_concurrency", "may not be negative")
    if settings.max_concurrency is not None and settings.reserved_concurrency > settings.max_concurrency:
        raise _fail(
            "reserved_concurrency", f"must be at most the function's ceiling ({settings.max_concurrency})"
        )
    if settings.concurrency_key:
        try:
            concurrency_key.parse(settings.concurrency_key)
        except concurrency_key.KeyPathError as exc:
            raise _fail("concurrency_key", str(exc)) from None
        if settings.concurrency_per_key is None:
            settings = replace(settings, concurrency_per_key=1)
    elif settings.concurrency_per_key is not None:
        raise _fail("concurrency_per_key", "needs a concurrency_key (e.g. $[0].store_id)")
    if settings.concurrency_per_key is not None and settings.concurrency_per_key < 1:
        raise _fail("concurrency_per_key", "must be at least 1")
    _check_reserved(tenant, settings.reserved_concurrency, exclude=exclude)
    return settings


def _check_reserved(tenant: Tenant, reserved: int, *, exclude) -> None:
    if not reserved:
        return
    # the tenant's row lock (the one slot filling takes): two functions reserving at once are checked
    # one after the other, never both against the same sum
    Tenant.objects.select_for_update(no_key=True).filter(pk=tenant.pk).first()
    others = Function.objects.filter(tenant=tenant)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    taken = sum(others.values_list("reserved_concurrency", flat=True))
    cap = tenant.quota.max_concurrency
    if taken + reserved > cap - 1:
        raise _fail(
            "reserved_concurrency",
            f"{taken + reserved} reserved in all would leave no room in this tenant's concurrency cap of "
            f"{cap} (other functions reserve {taken}; at most {max(0, cap - 1 - taken)} more)",
            quota="max_concurrency",
            limit=cap,
            reserved_by_others=taken,
        )


def flow_apply(*, function: Function, settings: FlowSettings) -> None:
    """Set checked settings on the (locked) function; re-key its waiting jobs if the key changed."""
    key_changed = settings.concurrency_key != function.concurrency_key
    for f in fields(FlowSettings):
        setattr(function, f.name, getattr(settings, f.name))
    if key_changed and function.pk is not None:
        _rekey(function)


def _rekey(function: Function) -> None:
    steps = concurrency_key.parse(function.concurrency_key) if function.concurrency_key else ()
    waiting = Job.objects.filter(function=function, status__in=_REKEYED).only("id", "args")
    batch = []
    for job in waiting.iterator(chunk_size=1000):
        job.concurrency_key = concurrency_key.evaluate(steps, job.args) if steps else None
        batch.append(job)
        if len(batch) >= 1000:
            Job.objects.bulk_update(batch, ["concurrency_key"])
            batch = []
    if batch:
        Job.objects.bulk_update(batch, ["concurrency_key"])
