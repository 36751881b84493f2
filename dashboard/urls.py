from django.urls import path

from . import team, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/new", views.job_new, name="job-new"),
    path("jobs/<str:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<str:job_id>/lines", views.job_log_lines, name="job-lines"),
    path("jobs/<str:job_id>/log.txt", views.job_log_download, name="job-log-download"),
    path("jobs/<str:job_id>/cancel", views.job_cancel, name="job-cancel"),
    path("jobs/<str:job_id>/retry", views.job_retry, name="job-retry"),
    path("jobs/<str:job_id>/delete", views.job_delete, name="job-delete"),
    path("dead-letters/", views.dead_letters, name="dead-letters"),
    path("dead-letters/requeue", views.dead_letters_requeue, name="dead-letters-requeue"),
    path("keys/", views.api_keys, name="api-keys"),
    path("keys/<int:key_id>/revoke", views.api_key_revoke_view, name="api-key-revoke"),
    path("members/", team.members, name="members"),
    path("invitations/", team.invitations, name="invitations"),
    path("invite/<str:token>/", team.invitation_link, name="invitation-link"),
    path("switch", views.switch_tenant, name="switch"),
]
