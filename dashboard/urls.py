from django.urls import path

from .views import dead_letters, editor, jobs, keys, overview, team, tenants

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/new", editor.job_new, name="job-new"),
    path("jobs/<str:job_id>/", jobs.job_detail, name="job-detail"),
    path("jobs/<str:job_id>/lines", jobs.job_log_lines, name="job-lines"),
    path("jobs/<str:job_id>/log.txt", jobs.job_log_download, name="job-log-download"),
    path("jobs/<str:job_id>/cancel", jobs.job_cancel, name="job-cancel"),
    path("jobs/<str:job_id>/retry", jobs.job_retry, name="job-retry"),
    path("jobs/<str:job_id>/delete", jobs.job_delete, name="job-delete"),
    path("dead-letters/", dead_letters.dead_letters, name="dead-letters"),
    path("dead-letters/requeue", dead_letters.dead_letters_requeue, name="dead-letters-requeue"),
    path("keys/", keys.api_keys, name="api-keys"),
    path("keys/<int:key_id>/revoke", keys.api_key_revoke_view, name="api-key-revoke"),
    path("members/", team.members, name="members"),
    path("invitations/", team.invitations, name="invitations"),
    path("invite/<str:token>/", team.invitation_link, name="invitation-link"),
    path("switch", tenants.switch_tenant, name="switch"),
]
