"""Dependency layers no version uses are removed (their volume, then their row) after a grace period."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import docker
from django.conf import settings
from django.db.models import Count, ProtectedError, Q
from django.utils import timezone

from sandbox import layers

from ..models import BuildStatus, DependencyLayer

log = logging.getLogger("lambdasite.functions")
STRAY_GRACE_S = 600.0


def layers_collect(*, client: docker.DockerClient, now: datetime | None = None) -> dict:
    """Remove unused layers: rows no version references (idle past LAYER_GC_AFTER_S), and volumes
    with the layer label that no row names (a build that died between creating and recording)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.LAYER_GC_AFTER_S)
    unused = (
        DependencyLayer.objects.annotate(users=Count("versions"))
        .filter(users=0, status=BuildStatus.READY)
        .filter(Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, built_at__lt=cutoff))
    )
    removed = []
    for layer in unused:
        # the row first, and only if still idle: a build reusing the layer touches last_used_at before
        # it checks the volume, and a version pointing at it makes the delete fail (PROTECT)
        try:
            deleted, _ = (
                DependencyLayer.objects.filter(pk=layer.pk)
                .filter(Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True))
                .delete()
            )
        except ProtectedError:
            continue
        if deleted:
            layers.remove(client, layer.volume)  # if a cell still has it mounted: a stray, removed later
            removed.append(layer.volume)
    known = set(DependencyLayer.objects.values_list("volume", flat=True))
    strays = []
    for volume, age_s in layers.volumes(client).items():
        # younger than the grace period: an install may be between creating it and recording it
        if volume not in known and age_s > STRAY_GRACE_S and layers.remove(client, volume):
            strays.append(volume)
    if removed or strays:
        log.info(
            "layers collected", extra={"event": "layers_collected", "removed": removed, "strays": strays}
        )
    return {"removed": removed, "strays": strays}
