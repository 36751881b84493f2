from django.urls import path

from . import durable, jobs, pools, tenant

urlpatterns = [
    path("jobs", jobs.jobs_endpoint, name="api-jobs"),
    path("jobs/<str:job_id>", jobs.job_detail, name="api-job-detail"),
    path("jobs/<str:job_id>/logs", jobs.job_logs, name="api-job-logs"),
    path("jobs/<str:job_id>/connections", jobs.job_connections, name="api-job-connections"),
    path("jobs/<str:job_id>/steps", durable.job_steps, name="api-job-steps"),
    path("jobs/<str:job_id>/cancel", jobs.job_cancel, name="api-job-cancel"),
    path("jobs/<str:job_id>/retry", jobs.job_retry, name="api-job-retry"),
    path("dead-letters", jobs.dead_letters, name="api-dead-letters"),
    path("events", durable.events, name="api-events"),
    path("runtimes", tenant.runtimes, name="api-runtimes"),
    path("usage", tenant.usage, name="api-usage"),
    path("stats", tenant.stats, name="api-stats"),
    path("pools", pools.pools, name="api-pools"),
]
