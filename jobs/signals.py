"""What the job core tells the apps above it, without importing them.

``job_outcome(sender=Job, job=job)`` is sent inside the transaction that gives a job its final
status (a finish, a cancel, a dead letter, a held job whose build failed), after the status is set
on ``job``. A receiver that writes does so in that transaction, so what it writes commits with the
outcome or not at all (the webhook outbox: ``webhooks/apps.py``); one that raises rolls the
outcome back, as the sender's own statements would."""

from __future__ import annotations

from django.dispatch import Signal

job_outcome = Signal()
