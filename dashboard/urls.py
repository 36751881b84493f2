from django.urls import path

from .views import dead_letters, editor, functions, jobs, keys, overview, team, tenants

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
    path("functions/", functions.function_list, name="functions"),
    path("functions/new", functions.function_new, name="function-new"),
    path("functions/<str:name>/", functions.function_detail, name="function-detail"),
    path("functions/<str:name>/deploy", functions.function_deploy, name="function-deploy"),
    path("functions/<str:name>/alias", functions.function_alias, name="function-alias"),
    path("functions/<str:name>/invoke", functions.function_invoke, name="function-invoke"),
    path("functions/<str:name>/warm", functions.function_warm, name="function-warm"),
    path("functions/<str:name>/delete", functions.function_delete, name="function-delete"),
    path("functions/<str:name>/versions/<str:number>/", functions.version_detail, name="function-version"),
    path(
        "functions/<str:name>/versions/<str:number>/lines",
        functions.version_lines,
        name="function-version-lines",
    ),
    path("dead-letters/", dead_letters.dead_letters, name="dead-letters"),
    path("dead-letters/requeue", dead_letters.dead_letters_requeue, name="dead-letters-requeue"),
    path("keys/", keys.api_keys, name="api-keys"),
    path("keys/<int:key_id>/revoke", keys.api_key_revoke_view, name="api-key-revoke"),
    path("members/", team.members, name="members"),
    path("invitations/", team.invitations, name="invitations"),
    path("invite/<str:token>/", team.invitation_link, name="invitation-link"),
    path("switch", tenants.switch_tenant, name="switch"),
]
