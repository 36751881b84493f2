from django.urls import path

from . import views

urlpatterns = [
    path("schedules", views.schedules, name="api-schedules"),
    path("schedules/<str:name>", views.schedule_detail, name="api-schedule-detail"),
    path("schedules/<str:name>/runs", views.schedule_runs, name="api-schedule-runs"),
    path("schedules/<str:name>/run", views.schedule_run_now, name="api-schedule-run"),
]
