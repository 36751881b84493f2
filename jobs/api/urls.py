from django.urls import path

from . import views

urlpatterns = [
    path("jobs", views.jobs, name="api-jobs"),
    path("jobs/<str:job_id>", views.job_detail, name="api-job-detail"),
    path("jobs/<str:job_id>/logs", views.job_logs, name="api-job-logs"),
    path("runtimes", views.runtimes, name="api-runtimes"),
]
