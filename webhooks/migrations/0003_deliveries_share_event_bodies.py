"""Existing deliveries: one Event per distinct body (a job event fanned out to several endpoints, or
redelivered, had a copy per delivery), and each delivery pointed at it. Reversible: the copies are
written back."""

from django.db import migrations

FORWARD = """
INSERT INTO webhooks_event (tenant_id, type, job_id, body, created_at)
SELECT tenant_id, type, job_id, body, min(created_at)
FROM webhooks_delivery
GROUP BY tenant_id, type, job_id, body;

UPDATE webhooks_delivery AS d SET event_id = e.id
FROM webhooks_event AS e
WHERE e.tenant_id = d.tenant_id AND e.type = d.type AND e.job_id IS NOT DISTINCT FROM d.job_id
    AND e.body = d.body;
"""

BACKWARD = """
UPDATE webhooks_delivery AS d SET body = e.body, event_id = NULL
FROM webhooks_event AS e WHERE e.id = d.event_id;
DELETE FROM webhooks_event;
"""


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0002_event_bodies_redelivery_claim_indexes")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
