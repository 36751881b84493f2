"""A purged job (jobs.services.retention deletes in SQL, not through the ORM) leaves its schedule run
with no job: the database sets the reference to NULL itself, as the model's SET_NULL says."""

from django.db import migrations

FORWARD = """
DO $$
DECLARE name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
    WHERE conrelid = 'schedules_schedulerun'::regclass AND confrelid = 'jobs_job'::regclass AND contype = 'f';
    IF name IS NOT NULL THEN
        EXECUTE format('ALTER TABLE schedules_schedulerun DROP CONSTRAINT %I', name);
    END IF;
    ALTER TABLE schedules_schedulerun ADD CONSTRAINT schedules_schedulerun_job_id_set_null
        FOREIGN KEY (job_id) REFERENCES jobs_job (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;
END $$;
"""
BACKWARD = """
ALTER TABLE schedules_schedulerun DROP CONSTRAINT schedules_schedulerun_job_id_set_null;
ALTER TABLE schedules_schedulerun ADD CONSTRAINT schedules_schedulerun_job_id_fk_jobs_job_id
    FOREIGN KEY (job_id) REFERENCES jobs_job (id) DEFERRABLE INITIALLY DEFERRED;
"""


class Migration(migrations.Migration):
    dependencies = [("schedules", "0001_initial"), ("jobs", "0007_delayed_runs_and_callbacks")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
