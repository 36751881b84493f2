from django.urls import path

from . import views

urlpatterns = [
    path("jobs", views.jobs_endpoint, name="api-jobs"),
    path("jobs/batch", views.jobs_batch, name="api-jobs-batch"),
    path("jobs/<str:job_id>", views.job_detail, name="api-job-detail"),
    path("jobs/<str:job_id>/logs", views.job_logs, name="api-job-logs"),
    path("jobs/<str:job_id>/cancel", views.job_cancel, name="api-job-cancel"),
    path("jobs/<str:job_id>/retry", views.job_retry, name="api-job-retry"),
    path("dead-letters", views.dead_letters, name="api-dead-letters"),
    path("runtimes", views.runtimes, name="api-runtimes"),
    path("usage", views.usage, name="api-usage"),
    path("stats", views.stats, name="api-stats"),
]
