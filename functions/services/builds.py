"""Building a version's dependencies: resolve a lock, reuse or install the layer for it, mark the version
ready or failed, then release (or fail) the invocations that waited for it.

A build runs on a worker (RQ queue ``<jobs>-builds``) under a lease in PostgreSQL,
like an attempt: a worker that dies mid-build lets the lease expire and the
reconciler enqueues the build again, at most BUILD_MAX_ATTEMPTS times. Whatever the
dependencies themselves get wrong (no wheel, no such package, an install script,
over the size cap) fails the version with a readable error; only the platform's
own trouble (the engine away) is retried. Layers are shared: one per runtime + lock,
installed once by whichever build gets there first, under a lease of its own."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta

import docker
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import sandbox
from accounts.models import Tenant, UsageCharge
from jobs import billing
from jobs.models import Job, Status
from jobs.services.held import jobs_fail_held, jobs_release_held
from lambdasite import live
from lambdasite.redis_client import build_queue_name, get_queue
from sandbox import layers

from ..models import BuildStatus, DependencyLayer, FunctionVersion
from .buildlog import BuildLog, Lease, build_group
from .invoke import functions_changed

log = logging.getLogger("lambdasite.functions")


def build_enqueue(*, version_id, attempt: int | str = 0) -> None:
    get_queue(build_queue_name()).enqueue(
        "functions.tasks.build_version",
        version_id,
        job_id=f"build-{version_id}-{attempt}",
        job_timeout=int(settings.BUILD_TIMEOUT_S * 2 + 120),
        result_ttl=0,
        failure_ttl=3600,
        description=f"lambdasite build of version {version_id}",
    )


def build_limits() -> layers.BuildLimits:
    return layers.BuildLimits(
        timeout_s=settings.BUILD_TIMEOUT_S,
        memory_mb=settings.BUILD_MEMORY_MB,
        tmp_mb=settings.BUILD_TMP_MB,
        proxy_dir=settings.BUILD_PROXY_DIR,
        proxy_volume=settings.BUILD_PROXY_VOLUME,
        proxy_host_dir=settings.BUILD_PROXY_HOST_DIR,
        fetch_timeout_s=settings.BUILD_FETCH_TIMEOUT_S,
        index_url=settings.BUILD_PYPI_INDEX,
        npm_registry=settings.BUILD_NPM_REGISTRY,
    )


class _Deferred(Exception):
    """This build cannot go on now (its tenant's builds are at capacity, or its layer is being
    installed by another build): it is given back and runs again later, on no worker meanwhile."""


def _builds_running(tenant_id, *, now: datetime, exclude) -> int:
    return (
        FunctionVersion.objects.filter(
            function__tenant_id=tenant_id, status=BuildStatus.BUILDING, lease_expires_at__gt=now
        )
        .exclude(builder="")
        .exclude(pk=exclude)
        .count()
    )


def version_claim(*, version_id, worker: str, now: datetime | None = None) -> FunctionVersion | None:
    """Compare-and-set: take a building version whose lease is free; None if it is not ours to build
    (taken by another builder, finished, or its tenant already runs ``max_concurrent_builds`` builds:
    then it is left queued, and the tenant's next build starts when one of them ends)."""
    now = now or timezone.now()
    # no builder (queued: deployed, or re-enqueued by the reconciler), or a builder whose lease ran out
    free = Q(builder="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    with transaction.atomic():
        version = (
            FunctionVersion.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("function__tenant__quota")
            .filter(free, pk=version_id, status=BuildStatus.BUILDING)
            .first()
        )
        if version is None:
            return None
        tenant = version.function.tenant
        # one claim per tenant at a time, so two workers cannot both take the last build slot
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        if _builds_running(tenant.pk, now=now, exclude=version.pk) >= tenant.quota.max_concurrent_builds:
            FunctionVersion.objects.filter(pk=version.pk).update(
                builder="", lease_expires_at=now + timedelta(seconds=settings.BUILD_LEASE_S)
            )
            log.info(
                "build waits for its tenant's build capacity",
                extra={"event": "build_deferred", "version": version.pk, "tenant": tenant.slug},
            )
            return None
        version.builder = worker
        version.lease_expires_at = now + timedelta(seconds=settings.BUILD_LEASE_S)
        version.build_attempts += 1
        version.save(update_fields=["builder", "lease_expires_at", "build_attempts"])
    return version


def version_build(
    *, version_id, worker: str, client: docker.DockerClient | None = None, clock=time.monotonic
) -> FunctionVersion | None:
    """Build a version (on a worker). Returns the version as it ended, or None if it was not ours.
    ``clock`` times the build (billed, and told in its log)."""
    version = version_claim(version_id=version_id, worker=worker)
    if version is None:
        return None
    build_log = BuildLog(version)
    lease = Lease(version.pk, worker)
    lease.start()
    runtime = version.function.runtime
    started = clock()
    deferred = False
    try:
        client = client or sandbox.default().client
        build_log.system(f"build attempt {version.build_attempts} on {worker}")
        spec = version.requirements if runtime == "python" else version.dependencies
        build_log.system("resolving " + ("requirements" if runtime == "python" else "dependencies"))
        resolved = layers.resolve(client, runtime, spec, on_log=build_log, limits=build_limits())
        build_log.system(f"resolved {resolved.packages} package(s)")
        layer = _layer_for(client, version, resolved, build_log, lease, worker)
        _version_ready(version, resolved.lock, layer)
        build_log.system(f"ready in {clock() - started:.1f} s")
    except _Deferred:
        build_log.system("waiting for build capacity; the build continues shortly")
        _version_deferred(version, worker)
        deferred = True
    except layers.BuildFailed as exc:
        build_log.system(f"build failed: {exc}")
        _version_failed(version, str(exc))
    except sandbox.SandboxError as exc:
        build_log.system(f"the build could not run: {exc}")
        _version_unfinished(version, str(exc), worker)
    finally:
        build_log.flush()
        lease.stop()
        _charge(version, clock() - started)
        # a build given back is not its own next: the reconciler runs it again after BUILD_DEFER_S
        _start_next_build(version.function.tenant_id, exclude=version.pk if deferred else None)
    version.refresh_from_db()
    live.publish(build_group(version.pk), {"kind": "status", "status": version.status})
    return version


def _layer_for(client, version, resolved, build_log, lease, worker) -> DependencyLayer:
    """The ready layer for the lock: reused if built (by anyone), else installed now by this build."""
    runtime = version.function.runtime
    digest = layers.lock_digest(runtime, resolved.lock)
    cap = min(version.function.tenant.quota.max_dependency_bytes, settings.LAYER_MAX_BYTES)
    while True:
        layer, _ = DependencyLayer.objects.get_or_create(
            digest=digest,
            defaults={"runtime": runtime, "lock": resolved.lock, "packages": resolved.packages},
        )
        if layer.status == BuildStatus.READY:
            # touched before the volume is checked, so the collector does not remove it from under us
            DependencyLayer.objects.filter(pk=layer.pk).update(last_used_at=timezone.now())
            if layers.exists(client, layer.volume):
                if layer.size_bytes > cap:
                    raise layers.BuildFailed(_over_cap(layer.size_bytes, cap))
                if layer.files > settings.LAYER_MAX_FILES:
                    raise layers.BuildFailed(_over_files(layer.files))
                # the same words whoever built it: a log never tells that another tenant has this lock
                build_log.system(f"layer ready: {layer.files} files, {layer.size_bytes / 1e6:.1f} MB")
                return layer
            DependencyLayer.objects.filter(pk=layer.pk, status=BuildStatus.READY).update(
                status=BuildStatus.BUILDING, lease_expires_at=None
            )
            continue
        if _claim_layer(layer, worker):
            break
        raise _Deferred  # another build installs it: come back when it is done, holding no worker
    lease.layer_id = layer.pk
    try:
        # the installer's output goes to the server's log, not the version's: whether a lock's layer
        # had to be installed (or another tenant's build had installed it) is not the tenant's to read;
        # a failed install still says why (the error carries the installer's last lines)
        installed = layers.install(
            client,
            runtime,
            resolved.lock,
            max_bytes=cap,
            max_files=settings.LAYER_MAX_FILES,
            on_log=lambda line: log.debug("install: %s", line, extra={"version": version.pk}),
            limits=build_limits(),
        )
    except BaseException:
        DependencyLayer.objects.filter(pk=layer.pk, status=BuildStatus.BUILDING).delete()
        raise
    finally:
        lease.layer_id = None
    DependencyLayer.objects.filter(pk=layer.pk).update(
        status=BuildStatus.READY,
        volume=installed.volume,
        size_bytes=installed.size_bytes,
        files=installed.files,
        content_sha256=installed.content_sha256,
        built_at=timezone.now(),
        builder="",
        lease_expires_at=None,
    )
    layer.refresh_from_db()
    build_log.system(f"layer ready: {installed.files} files, {installed.size_bytes / 1e6:.1f} MB")
    return layer


def _over_cap(size: int, cap: int) -> str:
    return (
        f"the installed dependencies take {size / 1e6:.1f} MB, over this tenant's cap of {cap / 1e6:.1f} MB"
    )


def _over_files(files: int) -> str:
    return f"the installed dependencies hold {files} files, over the cap of {settings.LAYER_MAX_FILES}"


def _version_deferred(version: FunctionVersion, worker: str) -> None:
    """Give the build back without spending an attempt; it is enqueued again when the tenant's
    running build ends (``_start_next_build``) or by the reconciler after BUILD_DEFER_S."""
    FunctionVersion.objects.filter(pk=version.pk, builder=worker, status=BuildStatus.BUILDING).update(
        builder="",
        lease_expires_at=timezone.now() + timedelta(seconds=settings.BUILD_DEFER_S),
        build_attempts=max(0, version.build_attempts - 1),
    )


def _charge(version: FunctionVersion, seconds: float) -> None:
    """A build's time is the tenant's: GB-s of the builder's memory limit, like an attempt's."""
    gb_s = billing.gb_seconds(settings.BUILD_MEMORY_MB, billing.billed_ms(seconds * 1000))
    try:
        billing.charge(
            tenant_id=version.function.tenant_id,
            kind=UsageCharge.Kind.BUILD,
            gb_seconds=gb_s,
            reference=f"version {version.pk}",
        )
    except Exception:  # noqa: BLE001 - a lost charge must not lose the build's outcome
        log.exception("charging a build failed")


def _start_next_build(tenant_id, *, exclude=None) -> None:
    """The tenant's oldest build that waits for capacity is enqueued now (one is enough: it chains)."""
    try:
        waiting = (
            FunctionVersion.objects.filter(
                function__tenant_id=tenant_id, status=BuildStatus.BUILDING, builder=""
            )
            .exclude(pk=exclude)
            .order_by("created_at")
            .values_list("pk", "build_attempts")
            .first()
        )
        if waiting is not None:
            build_enqueue(version_id=waiting[0], attempt=f"{waiting[1]}-{uuid.uuid4().hex[:8]}")
    except Exception:  # noqa: BLE001 - the reconciler enqueues it after BUILD_DEFER_S anyway
        log.exception("starting the next build failed")


def _claim_layer(layer: DependencyLayer, worker: str) -> bool:
    """Take the right to install a layer: it is not ready and nobody holds a live lease on it."""
    now = timezone.now()
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    return bool(
        DependencyLayer.objects.filter(free, pk=layer.pk, status=BuildStatus.BUILDING).update(
            status=BuildStatus.BUILDING,
            builder=worker,
            lease_expires_at=now + timedelta(seconds=settings.BUILD_LEASE_S),
        )
    )


def _version_ready(version: FunctionVersion, lock: str, layer: DependencyLayer) -> None:
    now = timezone.now()
    with transaction.atomic():
        FunctionVersion.objects.filter(pk=version.pk).update(
            lock=lock,
            layer=layer,
            content_hash=version.hash_with(lock),
            status=BuildStatus.READY,
            built_at=now,
            builder="",
            lease_expires_at=None,
        )
        DependencyLayer.objects.filter(pk=layer.pk).update(last_used_at=now)
        functions_changed(version.function.tenant_id, version.function.name)
        released = jobs_release_held(version_id=version.pk)
    log.info(
        "version built",
        extra={"event": "version_ready", "version": version.pk, "released": released, "layer": layer.volume},
    )


def _version_failed(version: FunctionVersion, error: str) -> None:
    with transaction.atomic():
        FunctionVersion.objects.filter(pk=version.pk).update(
            status=BuildStatus.FAILED,
            build_error=error[:8000],
            built_at=timezone.now(),
            builder="",
            lease_expires_at=None,
        )
        functions_changed(version.function.tenant_id, version.function.name)
        failed = jobs_fail_held(
            version_id=version.pk,
            error={
                "type": "BuildFailed",
                "message": f"version {version.number} of {version.function.name} failed to build: "
                + error[:2000],
                "traceback": "",
            },
        )
    log.info(
        "version build failed",
        extra={"event": "version_failed", "version": version.pk, "jobs_failed": failed},
    )


def _version_unfinished(version: FunctionVersion, error: str, worker: str) -> None:
    """The platform could not run the build: give the lease back (the reconciler runs it again)
    or, after BUILD_MAX_ATTEMPTS, fail the version."""
    if version.build_attempts >= settings.BUILD_MAX_ATTEMPTS:
        _version_failed(version, f"the build could not run after {version.build_attempts} attempts: {error}")
        return
    FunctionVersion.objects.filter(pk=version.pk, builder=worker).update(
        lease_expires_at=timezone.now(), builder=""
    )


def builds_reconcile(*, now: datetime | None = None) -> dict:
    """Builds whose worker died or never took them are enqueued again; a version that ended while its
    held jobs were not yet released (a crash between the two) releases or fails them now."""
    now = now or timezone.now()
    grace = now - timedelta(seconds=settings.BUILD_LEASE_S)
    stale = FunctionVersion.objects.filter(status=BuildStatus.BUILDING).filter(
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True, created_at__lt=grace)
    )
    retried = failed = 0
    for version in stale.select_related("function"):
        if version.build_attempts >= settings.BUILD_MAX_ATTEMPTS:
            _version_failed(version, f"the build did not finish after {version.build_attempts} attempts")
            failed += 1
            continue
        # queued again (no builder); the lease pushed forward, so the next passes do not enqueue it
        # again unless no worker takes it within BUILD_LEASE_S
        FunctionVersion.objects.filter(pk=version.pk, status=BuildStatus.BUILDING).update(
            builder="", lease_expires_at=now + timedelta(seconds=settings.BUILD_LEASE_S)
        )
        transaction.on_commit(
            lambda pk=version.pk, n=version.build_attempts: build_enqueue(version_id=pk, attempt=n)
        )
        retried += 1
    released = 0
    held = (
        Job.objects.filter(status=Status.QUEUED, next_attempt_at__isnull=True, function_version__isnull=False)
        .exclude(function_version__status=BuildStatus.BUILDING)
        .values_list("function_version_id", "function_version__status", "function_version__build_error")
        .distinct()
    )
    for version_id, status, error in held:
        if status == BuildStatus.READY:
            released += jobs_release_held(version_id=version_id)
        else:
            released += jobs_fail_held(
                version_id=version_id, error={"type": "BuildFailed", "message": error[:2000], "traceback": ""}
            )
    return {"builds_retried": retried, "builds_failed": failed, "held_settled": released}
