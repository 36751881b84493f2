"""What a schedule's change tells the live pages once it commits: the schedules list and the
schedule's page look again (a tick fired, an outcome counted, an edit, a pause, a deletion)."""

from __future__ import annotations

from jobs import events
from lambdasite.caching import after_commit

from ..models import Schedule


def schedule_changed_after_commit(schedule: Schedule) -> None:
    after_commit(
        "telling pages of a schedule's change",
        events.schedule_changed,
        tenant_id=schedule.tenant_id,
        name=schedule.name,
    )
