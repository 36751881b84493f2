"""Dashboard pages through Django's test client: scoping, roles, forms, partials."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.test import Client

from accounts.models import ApiKey, Membership
from accounts.services import api_key_authenticate, membership_set, tenant_create, user_get_or_create
from jobs.models import Job, LogLine, Status

from .pages import ADD, signed_in

pytestmark = pytest.mark.django_db(transaction=True)  # dispatch and live events happen on commit


@pytest.fixture
def web(alice):
    return signed_in(alice.user)


def test_pages_need_a_signed_in_user(client):
    for path in ["/app/", "/app/jobs/", "/app/jobs/new", "/app/keys/", "/app/members/", "/app/dead-letters/"]:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path


def test_sign_in_with_the_form_lands_on_the_overview(alice, client):
    page = client.get("/login/")
    assert page.status_code == 200 and b'name="password"' in page.content
    wrong = client.post("/login/", {"username": "alice@acme.test", "password": "nope"})
    assert wrong.status_code == 200 and b"did not match" in wrong.content
    response = client.post("/login/", {"username": "alice@acme.test", "password": "pw-acme"}, follow=True)
    assert response.redirect_chain[-1][0] == "/app/"
    assert b"Overview" in response.content and b"Acme" in response.content
    assert client.get("/").status_code == 302  # signed in: home goes to the dashboard
    out = client.post("/logout/")
    assert out.status_code == 302 and client.get("/app/").status_code == 302


def test_password_change(alice, web):
    response = web.post(
        "/password/",
        {
            "old_password": "pw-acme",
            "new_password1": "a-new-long-pass-123",
            "new_password2": "a-new-long-pass-123",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/password/done/"
    alice.user.refresh_from_db()
    assert alice.user.check_password("a-new-long-pass-123")


def test_a_user_without_tenant_gets_a_clear_page(db):
    user = user_get_or_create(email="loner@x.test", password="pw-loner-1")
    response = signed_in(user).get("/app/")
    assert response.status_code == 403 and b"not a member of any tenant" in response.content


def test_overview_shows_counts_charts_quotas_and_cost(alice, web, run_worker):
    alice.tenant.quota.submissions_per_minute = 6  # refills at 0.1 token/s
    alice.tenant.quota.max_concurrency = 4  # the bar's numbers below (the default is 100)
    alice.tenant.quota.save()
    for args in ([1, 2], [3, 4]):
        alice.post_job({**ADD, "args": args})
    alice.post_job({"runtime": "python", "code": "def main():\n    raise ValueError('x')\n"})
    before = web.get("/app/").content.decode()
    rate_used = float(
        re.search(
            r'aria-label="Submission rate" aria-valuemin="0" aria-valuemax="6" aria-valuenow="([0-9.]+)"',
            before,
        ).group(1)
    )
    assert 2.5 < rate_used <= 3.0  # three tokens taken from the bucket
    assert (
        'aria-label="Concurrency" aria-valuemin="0" aria-valuemax="4" aria-valuenow="3.00"' in before
    )  # dispatched
    run_worker()
    page = web.get("/app/")
    html = page.content.decode()
    assert page.status_code == 200
    assert re.search(r'stat-n">3</span><span class="stat-l">jobs', html)
    stats = html[html.index("grid stats") : html.index("By status")]
    assert "67%" in stats, (stats, list(Job.objects.values_list("status", "error")))  # 2 of 3 succeeded
    assert html.count("<svg") == 2 and "<rect" in html and "<circle" in html
    assert "Concurrency" in html and "Submission rate" in html and "Compute this month" in html
    assert "Egress this month" in html and "GiB" in html  # the monthly egress budget (10 GiB by default)
    assert 'aria-label="Concurrency" aria-valuemin="0" aria-valuemax="4" aria-valuenow="0.00"' in html
    day = web.get("/app/?range=day&partial=1")
    assert day.status_code == 200 and b"<svg" in day.content and b"<html" not in day.content


def test_jobs_list_is_scoped_filtered_searchable_and_paged(alice, bob, web):
    mine = [alice.post_job({**ADD, "args": [i, i]}).json()["id"] for i in range(30)]
    node = alice.post_job({"runtime": "node", "code": "function main() { return 1; }"}).json()["id"]
    theirs = bob.post_job(ADD).json()["id"]
    page = web.get("/app/jobs/").content.decode()
    assert node[:8] in page and theirs[:8] not in page
    assert page.count('data-job="') == 25 and "Older" in page
    older = html.unescape(
        re.search(r'href="(\?cursor=[^"]+)">Older', page).group(1)
    )  # the API's keyset cursor
    rest = web.get(f"/app/jobs/{older}").content.decode()
    assert rest.count('data-job="') == 6 and "Newest" in rest
    shown = set(re.findall(r'<tr data-job="([0-9a-f-]+)"', page)) | set(
        re.findall(r'<tr data-job="([0-9a-f-]+)"', rest)
    )
    assert shown == set(mine) | {node}
    only_node = web.get("/app/jobs/?runtime=node").content.decode()
    assert only_node.count('<tr data-job="') == 1 and node in only_node
    by_prefix = web.get(f"/app/jobs/?q={mine[3][:8]}").content.decode()
    assert mine[3] in by_prefix
    assert b"No jobs match" in web.get(f"/app/jobs/?q={theirs}").content  # another tenant's id finds nothing
    assert b"No jobs match" in web.get("/app/jobs/?q=zzz").content
    assert web.get("/app/jobs/?status=bogus").status_code == 200
    stale = web.get("/app/jobs/?cursor=not-a-cursor")  # a forged cursor: the newest page instead
    assert stale.status_code == 302 and stale["Location"] == "/app/jobs/?"
    partial = web.get("/app/jobs/?runtime=node&partial=1")
    assert partial.status_code == 200 and b"<html" not in partial.content and node.encode() in partial.content


def test_job_detail_shows_result_logs_attempts_and_another_tenants_job_is_404(alice, bob, web, run_worker):
    job_id = alice.post_job(
        {
            "runtime": "python",
            "code": "import sys\ndef main(n):\n    print('out', n)\n    print('err', n, "
            "file=sys.stderr)\n    return {'n': n}\n",
            "args": [7],
        }
    ).json()["id"]
    run_worker()
    html = web.get(f"/app/jobs/{job_id}/").content.decode()
    assert 'class="badge s-succeeded"' in html
    assert "{\n  &quot;n&quot;: 7\n}" in html  # pretty JSON result
    assert 'class="line stdout" data-seq="1"' in html and 'class="line stderr" data-seq="2"' in html
    assert "#1</b>" in html and "Edit and run again" in html and ">Delete<" in html and ">Cancel<" not in html
    lines = web.get(f"/app/jobs/{job_id}/lines?after=1").json()
    assert [(line["seq"], line["stream"], line["text"]) for line in lines["lines"]] == [
        (2, "stderr", "err 7")
    ]
    assert web.get(f"/app/jobs/{job_id}/lines?after=x").status_code == 400
    download = web.get(f"/app/jobs/{job_id}/log.txt")
    body = b"".join(download.streaming_content).decode()
    assert download["Content-Disposition"].endswith(f'job-{job_id}.log"')
    assert body.splitlines()[0].endswith("attempt=1 stdout: out 7") and body.splitlines()[1].endswith(
        "stderr: err 7"
    )
    summary = web.get(f"/app/jobs/{job_id}/?partial=1")
    assert summary["Cache-Control"] == "no-store" and b"<html" not in summary.content
    # bob cannot see it, in any form
    bobs = signed_in(bob.user)
    for path in ["", "lines", "log.txt", "?partial=1"]:
        assert bobs.get(f"/app/jobs/{job_id}/{path}").status_code == 404, path
    assert bobs.post(f"/app/jobs/{job_id}/delete").status_code == 404
    assert bobs.get("/app/jobs/not-a-uuid/").status_code == 404
    assert Job.objects.filter(pk=job_id).exists()


def test_error_and_traceback_are_shown(alice, web, run_worker):
    job_id = alice.post_job({"runtime": "python", "code": "def main():\n    return {}['b']\n"}).json()["id"]
    run_worker()
    html = web.get(f"/app/jobs/{job_id}/").content.decode()
    assert (
        "KeyError" in html and "Traceback" in html and 'class="badge s-failed"' in html and ">Retry<" in html
    )


def test_actions_cancel_retry_delete(alice, web):
    job_id = alice.post_job(ADD).json()["id"]
    response = web.post(f"/app/jobs/{job_id}/cancel", follow=True)
    assert b"Cancel requested" in response.content and Job.objects.get(pk=job_id).status == Status.CANCELLED
    again = web.post(f"/app/jobs/{job_id}/cancel", follow=True)
    assert b"already cancelled" in again.content
    web.post(f"/app/jobs/{job_id}/retry")
    assert Job.objects.get(pk=job_id).status in (Status.QUEUED, Status.DISPATCHED)
    refused = web.post(f"/app/jobs/{job_id}/delete", follow=True)
    assert b"cancel it first" in refused.content and Job.objects.filter(pk=job_id).exists()
    web.post(f"/app/jobs/{job_id}/cancel")
    gone = web.post(f"/app/jobs/{job_id}/delete")
    assert (
        gone.status_code == 302
        and gone["Location"] == "/app/jobs/"
        and not Job.objects.filter(pk=job_id).exists()
    )
    assert web.get(f"/app/jobs/{job_id}/cancel").status_code == 405


def test_new_job_form_submits_validates_and_prefills(alice, web):
    page = web.get("/app/jobs/new")
    assert (
        page.status_code == 200
        and b"codemirror.js" in page.content
        and b"Print a line a second" in page.content
    )
    form = {
        "runtime": "python",
        "handler": "main",
        "code": ADD["code"],
        "args": "[2, 3]",
        "timeout_ms": "5000",
        "memory_mb": "128",
        "max_retries": "1",
    }
    created = web.post("/app/jobs/new", form)
    job = Job.objects.get(tenant=alice.tenant)
    assert created.status_code == 302 and created["Location"] == f"/app/jobs/{job.id}/"
    assert (job.args, job.timeout_ms, job.memory_mb, job.max_retries, job.api_key) == (
        [2, 3],
        5000,
        128,
        1,
        None,
    )
    for change, message in [
        ({"args": "[2, 3"}, b"not valid JSON"),
        ({"args": '{"a": 1}'}, b"must be a JSON array"),
        (
            {"memory_mb": "4096"},
            b">Memory (MB): 4096 is over this tenant&#x27;s cap of 512.<",
        ),  # beside its field, in its label's words: no "memory_mb:"
        ({"timeout_ms": "soon"}, b"whole number"),
        ({"code": "   "}, b"may not be blank"),
        ({"handler": "2bad"}, b"must be an identifier"),
        ({"runtime": "cobol"}, b"is not a valid choice"),
    ]:
        response = web.post("/app/jobs/new", {**form, **change})
        assert response.status_code == 400 and message in response.content, change
        assert b"return a + b" in response.content or "code" in change  # the form keeps what was typed
    assert Job.objects.filter(tenant=alice.tenant).count() == 1
    prefill = web.get(f"/app/jobs/new?from={job.id}").content.decode()
    assert "return a + b" in prefill and 'value="1"' in prefill


def test_new_job_respects_the_rate_limit_with_a_message(alice, web):
    alice.tenant.quota.submissions_per_minute = 1
    alice.tenant.quota.save()
    form = {
        "runtime": "python",
        "handler": "main",
        "code": ADD["code"],
        "args": "[]",
        "timeout_ms": "",
        "memory_mb": "",
        "max_retries": "",
    }
    assert web.post("/app/jobs/new", form).status_code == 302
    limited = web.post("/app/jobs/new", form)
    assert limited.status_code == 400 and b"submissions per minute" in limited.content


def test_roles_viewer_reads_member_writes_owner_manages(alice):
    viewer = user_get_or_create(email="vic@acme.test", password="pw-viewer-1")
    member = user_get_or_create(email="meg@acme.test", password="pw-member-1")
    membership_set(tenant=alice.tenant, user=viewer, role=Membership.Role.VIEWER)
    membership_set(tenant=alice.tenant, user=member, role=Membership.Role.MEMBER)
    job_id = alice.post_job(ADD).json()["id"]
    v, m = signed_in(viewer), signed_in(member)
    assert v.get(f"/app/jobs/{job_id}/").status_code == 200
    assert b">Cancel<" not in v.get(f"/app/jobs/{job_id}/").content
    assert v.get("/app/jobs/new").status_code == 403
    assert v.post(f"/app/jobs/{job_id}/cancel").status_code == 403
    assert v.post("/app/keys/", {"name": "x", "scope": "write"}).status_code == 403
    assert v.get("/app/members/").status_code == 403 and m.get("/app/members/").status_code == 403
    assert b">Cancel<" in m.get(f"/app/jobs/{job_id}/").content
    assert m.post(f"/app/jobs/{job_id}/cancel").status_code == 302
    assert b"Members" not in m.get("/app/").content.split(b"<main")[0]


def test_api_keys_secret_shown_once_works_and_revokes(alice, web):
    posted = web.post("/app/keys/", {"name": "ci", "scope": "read"})
    assert posted.status_code == 302 and posted["Location"] == "/app/keys/"  # a reload issues nothing
    response = web.get("/app/keys/")
    html = response.content.decode()
    assert ApiKey.objects.filter(tenant=alice.tenant, name="ci").count() == 1
    assert response["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-key" class="mono" readonly value="(lsk_[^"]+)"', html).group(1)
    key = api_key_authenticate(plaintext=secret)
    assert key is not None and key.scope == "read" and key.created_by == alice.user
    again = web.get("/app/keys/").content.decode()
    assert secret not in again and f"lsk_{key.key_id}_…" in again  # never shown again, only its id
    assert web.post("/app/keys/", {"name": "", "scope": "read"}).status_code == 400
    revoked = web.post(f"/app/keys/{key.id}/revoke", follow=True)
    assert b"revoked" in revoked.content and api_key_authenticate(plaintext=secret) is None


def test_members_can_only_revoke_their_own_keys(alice):
    member = user_get_or_create(email="meg@acme.test", password="pw-member-1")
    membership_set(tenant=alice.tenant, user=member, role=Membership.Role.MEMBER)
    owners_key = alice.api_key
    response = signed_in(member).post(f"/app/keys/{owners_key.id}/revoke", follow=True)
    assert b"Only an owner" in response.content
    owners_key.refresh_from_db()
    assert owners_key.revoked_at is None


def test_a_key_of_another_tenant_cannot_be_revoked(alice, bob, web):
    assert web.post(f"/app/keys/{bob.api_key.id}/revoke").status_code == 404
    assert ApiKey.objects.get(pk=bob.api_key.id).revoked_at is None


def test_members_page_invites_changes_roles_and_keeps_one_owner(alice, web):
    posted = web.post("/app/members/", {"action": "invite", "email": "new@acme.test", "role": "viewer"})
    assert posted.status_code == 302 and posted["Location"] == "/app/members/"  # a reload repeats nothing
    invited = web.get("/app/members/")
    assert (
        invited.status_code == 200
        and b"/app/invite/" in invited.content
        and invited["Cache-Control"] == "no-store"
    )
    assert b"/app/invite/" not in web.get("/app/members/").content  # the link is shown once
    assert not Membership.objects.filter(
        tenant=alice.tenant, user__username="new@acme.test"
    ).exists()  # not before accepting
    link = re.search(r'value="(http://testserver/app/invite/[^"]+)"', invited.content.decode()).group(1)
    newcomer_client = Client()
    joined = newcomer_client.post(
        link.replace("http://testserver", ""), {"password": "initial-pass-1", "password2": "initial-pass-1"}
    )
    assert joined.status_code == 302
    newcomer = Membership.objects.get(tenant=alice.tenant, user__username="new@acme.test")
    assert newcomer.role == "viewer" and newcomer.user.check_password("initial-pass-1")
    web.post("/app/members/", {"action": "role", "membership": newcomer.id, "role": "member"})
    newcomer.refresh_from_db()
    assert newcomer.role == "member"
    me = Membership.objects.get(tenant=alice.tenant, user=alice.user)
    demote = web.post("/app/members/", {"action": "role", "membership": me.id, "role": "viewer"})
    assert demote.status_code == 400 and b"at least one owner" in demote.content
    leave = web.post("/app/members/", {"action": "remove", "membership": me.id})
    assert leave.status_code == 400 and b"at least one owner" in leave.content
    web.post("/app/members/", {"action": "remove", "membership": newcomer.id, "role": "member"})
    assert not Membership.objects.filter(pk=newcomer.id).exists()


def test_tenant_switcher_and_links_to_jobs_of_my_other_tenant(alice, bob):
    second = tenant_create(slug="initech", name="Initech")
    membership_set(tenant=second, user=alice.user, role=Membership.Role.VIEWER)
    web = signed_in(alice.user)
    assert b'id="tenant-switch"' in web.get("/app/").content
    web.post("/app/switch", {"tenant": "initech", "next": "/app/jobs/"})
    page = web.get("/app/jobs/").content.decode()
    assert 'Initech (viewer)" selected' in page or 'value="initech" selected' in page
    assert "New job" not in page.split("<main")[0]  # a viewer here
    # a link to a job of Acme shows it in Acme rather than saying 404, and switches nothing
    job_id = alice.post_job(ADD).json()["id"]
    detail = web.get(f"/app/jobs/{job_id}/")
    assert detail.status_code == 200 and b"This page belongs to Acme" in detail.content
    assert 'value="initech" selected' in web.get("/app/").content.decode()
    web.post("/app/switch", {"tenant": "acme"})  # switching is a POST
    assert 'value="acme" selected' in web.get("/app/").content.decode()
    # switching to a tenant you are not in does nothing
    web.post("/app/switch", {"tenant": bob.tenant.slug})
    assert 'value="acme" selected' in web.get("/app/").content.decode()


def test_dead_letters_page_requeues(alice, web, run_worker):
    job_id = alice.post_job(
        {"runtime": "python", "code": "def main():\n    raise ValueError(1)\n", "max_retries": 1}
    ).json()["id"]
    run_worker()
    Job.objects.filter(pk=job_id).update(status=Status.DEAD)  # skip the backoff wait
    page = web.get("/app/dead-letters/").content.decode()
    assert job_id[:8] in page and "ValueError" in page
    web.post("/app/dead-letters/requeue", {"job": [job_id, "junk"]})
    assert Job.objects.get(pk=job_id).status in (Status.QUEUED, Status.DISPATCHED)
    assert b"No dead letters" in web.get("/app/dead-letters/?partial=1").content


def test_a_requeued_job_counts_its_attempts_within_the_run(alice, web):
    job = Job.objects.get(pk=alice.post_job({**ADD, "max_retries": 2}).json()["id"])
    Job.objects.filter(pk=job.pk).update(status=Status.DEAD, attempts=3)  # its three attempts used up
    assert "attempt 3 of up to 3<" in web.get(f"/app/jobs/{job.pk}/").content.decode()
    web.post("/app/dead-letters/requeue", {"job": [str(job.pk)]})
    assert "requeued after 3 attempts<" in web.get(f"/app/jobs/{job.pk}/?partial=1").content.decode()
    Job.objects.filter(pk=job.pk).update(status=Status.RUNNING, attempts=4)  # the new run's first attempt
    page = web.get(f"/app/jobs/{job.pk}/").content.decode()
    assert "attempt 1 of up to 3 since the requeue (4 in all)<" in page and "attempt 4" not in page


def test_dead_letters_requeue_with_nothing_selected_says_so_and_changes_nothing(alice, web):
    job = Job.objects.get(pk=alice.post_job(ADD).json()["id"])
    Job.objects.filter(pk=job.pk).update(status=Status.DEAD, attempts=1)
    for form in ({}, {"job": ["junk"]}):
        response = web.post("/app/dead-letters/requeue", form, follow=True)
        page = response.content.decode()
        assert response.redirect_chain[-1][0] == "/app/dead-letters/"
        assert 'class="msg error">Nothing was requeued: select the jobs to requeue first.' in page
        assert "Requeued" not in page
    job.refresh_from_db()
    assert job.status == Status.DEAD and job.retry_base == 0


def test_log_lines_are_paged_in_order(alice, web):
    job = Job.objects.get(pk=alice.post_job(ADD).json()["id"])
    from django.utils import timezone

    LogLine.objects.bulk_create(
        [
            LogLine(job=job, attempt=1, seq=i, stream="stdout", ts=timezone.now(), text=f"l{i}")
            for i in range(1, 2502)
        ]
    )
    first = web.get(f"/app/jobs/{job.id}/lines?after=0").json()
    assert len(first["lines"]) == 2000 and first["more"] and first["lines"][-1]["seq"] == 2000
    rest = web.get(f"/app/jobs/{job.id}/lines?after=2000").json()
    assert [line["seq"] for line in rest["lines"]] == list(range(2001, 2502)) and not rest["more"]
    assert json.loads(json.dumps(rest))["lines"][0]["text"] == "l2001"


def test_every_example_succeeds_with_the_pages_own_defaults(alice, web, run_worker):
    """The new-job page's examples, submitted as the page fills the form (its default limits), run
    to the outcome they promise in both runtimes: "A failing one" fails, every other succeeds."""
    from dashboard.examples import EXAMPLES

    page = web.get("/app/jobs/new").content.decode()
    defaults = {
        name: re.search(rf'name="{name}" value="(\d+)"', page).group(1)
        for name in ("timeout_ms", "memory_mb", "max_retries")
    }
    submitted = {}
    for example in EXAMPLES:
        for runtime in ("python", "node"):
            form = {"runtime": runtime, "handler": "main", "code": example[runtime], "args": example["args"]}
            response = web.post("/app/jobs/new", {**form, **defaults})
            assert response.status_code == 302, (example["key"], runtime)
            submitted[(example["key"], runtime)] = response["Location"].split("/")[-2]
    run_worker()
    for (key, runtime), job_id in submitted.items():
        status = Job.objects.get(pk=job_id).status
        assert status == (Status.FAILED if key == "fail" else Status.SUCCEEDED), (key, runtime, status)


def test_inviting_an_address_again_says_the_earlier_link_stops_working(alice, web):
    first = web.post(
        "/app/members/", {"action": "invite", "email": "sam@acme.test", "role": "member"}, follow=True
    )
    earlier = re.search(r'value="(http://testserver/app/invite/[^"]+)"', first.content.decode()).group(1)
    assert b"no longer works" not in first.content
    again = web.post(
        "/app/members/", {"action": "invite", "email": "sam@acme.test", "role": "member"}, follow=True
    )
    assert b"The link of the earlier invitation to this address no longer works." in again.content
    assert Client().get(earlier.replace("http://testserver", "")).status_code == 404
