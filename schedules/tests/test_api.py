"""The schedules API against PostgreSQL and Redis: create with the next fire times, validation,
changes, pause and resume, runs, run now, quotas, and tenant isolation."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from functions.services import aliases
from functions.services.deploy import VersionSpec, function_create
from functions.tests.support import PY_ADD, call, make_adder
from schedules.models import Schedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def adder(alice):
    return make_adder(alice.tenant)


NIGHTLY = {
    "name": "nightly",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "function": "adder",
    "args": [1, 2],
}


def test_a_schedule_answers_with_its_next_five_fire_times(alice, adder):
    response = call(alice, "POST", "/api/v1/schedules", NIGHTLY)
    assert response.status_code == 201, response.json()
    body = response.json()
    times = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in body["next_fire_times"]]
    assert len(times) == 5 and times == sorted(times)
    berlin = ZoneInfo("Europe/Berlin")
    assert all(t.astimezone(berlin).strftime("%H:%M") in ("02:30", "03:00") for t in times)
    assert body["enabled"] and body["overlap"] == "skip" and body["catch_up"] == "none"
    assert body["cron_description"] == "At 02:30 every day"  # in words, in the schedule's own zone
    assert (
        call(alice, "GET", "/api/v1/schedules/nightly").json()["next_fire_times"] == body["next_fire_times"]
    )
    assert [s["name"] for s in call(alice, "GET", "/api/v1/schedules").json()] == ["nightly"]


@pytest.mark.parametrize(
    ("change", "status", "word"),
    [
        ({"cron": "61 * * * *"}, 400, "cron"),
        ({"cron": "* * *"}, 400, "cron"),
        ({"cron": "*/10 * * * * *"}, 400, "minimum interval"),  # every 10 s, under the 60 s default
        ({"timezone": "Mars/Olympus"}, 400, "timezone"),
        ({"function": "nope"}, 400, "function"),
        ({"overlap": "sometimes"}, 400, "overlap"),
        ({"args": {"a": 1}}, 400, "args"),
        ({"name": "Bad Name"}, 400, "name"),
        ({"surprise": True}, 400, "surprise"),
    ],
)
def test_bad_schedules_are_refused_clearly(alice, adder, change, status, word):
    response = call(alice, "POST", "/api/v1/schedules", {**NIGHTLY, **change})
    assert response.status_code == status, response.json()
    assert word in json.dumps(response.json())
    assert not Schedule.objects.exists()


def _nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("args", "word"),
    [
        ("[" * 65 + "]" * 65, "nested"),  # past the 64 levels every other args may have
        ("[" * 700 + "]" * 700, "nested"),
        ("[1e400]", "finite"),
        ('["\\u0000"]', "NUL"),
    ],
)
def test_schedule_args_follow_the_api_args_rule(alice, adder, args, word):
    fields = json.dumps({k: v for k, v in NIGHTLY.items() if k != "args"})[:-1]
    created = alice.client.post(
        "/api/v1/schedules", data=f'{fields}, "args": {args}}}'.encode(), content_type="application/json"
    )
    assert created.status_code == 400, created.content
    assert created.json()["error"]["code"] in ("validation_error", "malformed_json")
    assert word in json.dumps(created.json())
    assert not Schedule.objects.exists()
    assert call(alice, "POST", "/api/v1/schedules", NIGHTLY).status_code == 201
    changed = alice.client.patch(
        "/api/v1/schedules/nightly", data=f'{{"args": {args}}}'.encode(), content_type="application/json"
    )
    assert changed.status_code == 400 and word in json.dumps(changed.json())
    assert Schedule.objects.get().args == [1, 2]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"args": _nested(65)}, "args"),
        ({"args": _nested(100_000)}, "args"),  # the service's own check never recurses
        ({"args": [float("inf")]}, "args"),
        ({"args": ["\x00"]}, "args"),
        ({"qualifier": "²"}, "qualifier"),
        ({"qualifier": "a b"}, "qualifier"),
    ],
)
def test_the_service_refuses_what_no_run_could_use(alice, adder, spec, field):
    """The dashboard's form reaches the service without the API's serializer."""
    from lambdasite.exceptions import ValidationFailed
    from schedules.services import manage

    base = {"cron": "30 2 * * *", "function": "adder"}
    with pytest.raises(ValidationFailed) as refused:
        manage.schedule_create(tenant=alice.tenant, name="nightly", spec=manage.ScheduleSpec(**base, **spec))
    assert refused.value.details["fields"].keys() == {field}
    assert not Schedule.objects.exists()


def test_a_schedule_qualifier_must_be_able_to_name_something(alice, adder):
    response = call(alice, "POST", "/api/v1/schedules", {**NIGHTLY, "qualifier": "²"})
    assert response.status_code == 400 and "qualifier" in response.json()["error"]["message"]
    aliases.alias_set(function=adder, name="prod", version=1)
    assert call(alice, "POST", "/api/v1/schedules", {**NIGHTLY, "qualifier": "prod"}).status_code == 201


@pytest.mark.parametrize(
    ("qualifier", "message"),
    [
        ("prod", "adder has no alias 'prod'"),
        ("7", "adder has no version 7"),
        ("1234567890", "adder has no version 1234567890"),
    ],
)
def test_a_qualifier_naming_nothing_the_function_has_is_refused(alice, adder, qualifier, message):
    """Schemathesis ST302: a schedule created with an unknown alias was a 201, and its every run a
    404 alias_not_found, as if the schedule were gone. Refused when saved, as a route's is."""
    response = call(alice, "POST", "/api/v1/schedules", {**NIGHTLY, "qualifier": qualifier})
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["details"]["fields"] == {"qualifier": [message]}
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("qualifier", ["", "latest", "1", "prod"])
def test_a_qualifier_naming_something_is_taken(alice, adder, qualifier):
    aliases.alias_set(function=adder, name="prod", version=1)  # in this transaction: no cache to wait for
    response = call(alice, "POST", "/api/v1/schedules", {**NIGHTLY, "qualifier": qualifier})
    assert response.status_code == 201, response.json()
    assert response.json()["qualifier"] == (qualifier or None)


def test_a_change_is_checked_against_the_function_it_will_run(alice, adder):
    aliases.alias_set(function=adder, name="prod", version=1)
    assert call(alice, "POST", "/api/v1/schedules", {**NIGHTLY, "qualifier": "prod"}).status_code == 201
    to_unknown = call(alice, "PATCH", "/api/v1/schedules/nightly", {"qualifier": "staging"})
    assert to_unknown.status_code == 400
    assert to_unknown.json()["error"]["details"]["fields"] == {"qualifier": ["adder has no alias 'staging'"]}
    function_create(
        tenant=alice.tenant, user=None, name="other", runtime="python", spec=VersionSpec(code=PY_ADD)
    )
    # the qualifier stays "prod": the other function has no such alias
    to_other = call(alice, "PATCH", "/api/v1/schedules/nightly", {"function": "other"})
    assert to_other.status_code == 400
    assert to_other.json()["error"]["details"]["fields"] == {"qualifier": ["other has no alias 'prod'"]}
    both = call(alice, "PATCH", "/api/v1/schedules/nightly", {"function": "other", "qualifier": ""})
    assert both.status_code == 200 and both.json()["function"] == "other"
    schedule = Schedule.objects.get()
    assert schedule.function.name == "other" and schedule.qualifier == ""


def test_a_dashboard_form_gets_the_same_refusal(alice, adder):
    """The dashboard's form reaches the service without the API's serializer."""
    from lambdasite.exceptions import ValidationFailed
    from schedules.services import manage

    spec = manage.ScheduleSpec(cron="30 2 * * *", function="adder", qualifier="prod")
    with pytest.raises(ValidationFailed) as refused:
        manage.schedule_create(tenant=alice.tenant, name="nightly", spec=spec)
    assert refused.value.details["fields"] == {"qualifier": ["adder has no alias 'prod'"]}


def test_running_a_schedule_whose_alias_was_deleted_is_a_409_naming_the_fix(
    alice, adder, django_capture_on_commit_callbacks
):
    """Before: a 404 alias_not_found from POST /schedules/{name}/run, read as the schedule gone."""
    from jobs.models import Job
    from schedules.models import ScheduleRun

    with django_capture_on_commit_callbacks(execute=True):  # the invocation cache sees each change
        aliases.alias_set(function=adder, name="prod", version=1)
    call(alice, "POST", "/api/v1/schedules", {**NIGHTLY, "qualifier": "prod"})
    assert call(alice, "POST", "/api/v1/schedules/nightly/run").status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        aliases.alias_delete(function=adder, name="prod")
    answer = call(alice, "POST", "/api/v1/schedules/nightly/run")
    assert answer.status_code == 409, answer.json()
    error = answer.json()["error"]
    assert error["code"] == "schedule_qualifier_gone"
    assert (
        "adder has no alias 'prod'" in error["message"]
        and "change the schedule's qualifier" in error["message"]
    )
    assert error["details"] == {"function": "adder", "qualifier": "prod", "cause": "alias_not_found"}
    assert ScheduleRun.objects.count() == 1 and Job.objects.count() == 1  # the refusal wrote nothing
    assert call(alice, "GET", "/api/v1/schedules/nightly").status_code == 200  # the schedule is there
    # fixed by pointing it elsewhere, then it runs again
    assert call(alice, "PATCH", "/api/v1/schedules/nightly", {"qualifier": "1"}).status_code == 200
    assert call(alice, "POST", "/api/v1/schedules/nightly/run").status_code == 202


def test_six_fields_mean_seconds_first(alice, adder):
    quota = alice.tenant.quota
    quota.min_schedule_interval_s = 10
    quota.save()
    body = call(
        alice, "POST", "/api/v1/schedules", {**NIGHTLY, "cron": "*/15 * * * * *", "timezone": "UTC"}
    ).json()
    first, second = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in body["next_fire_times"][:2])
    assert (second - first).total_seconds() == 15


def test_pause_resume_change_and_delete(alice, adder):
    call(alice, "POST", "/api/v1/schedules", NIGHTLY)
    paused = call(alice, "PATCH", "/api/v1/schedules/nightly", {"enabled": False}).json()
    assert paused["enabled"] is False and paused["next_fire_times"] == []
    assert Schedule.objects.get().next_fire_at is None
    Schedule.objects.update(consecutive_failures=3, paused_reason="paused after 3 consecutive failed runs")
    resumed = call(alice, "PATCH", "/api/v1/schedules/nightly", {"enabled": True}).json()
    assert resumed["enabled"] and resumed["paused_reason"] is None and resumed["consecutive_failures"] == 0
    changed = call(
        alice, "PATCH", "/api/v1/schedules/nightly", {"cron": "0 6 * * 1", "timezone": "UTC"}
    ).json()
    assert all(t.endswith("T06:00:00Z") for t in changed["next_fire_times"])
    assert call(alice, "PATCH", "/api/v1/schedules/nightly", {"cron": "bad"}).status_code == 400
    assert call(alice, "DELETE", "/api/v1/schedules/nightly").status_code == 204
    assert call(alice, "GET", "/api/v1/schedules/nightly").status_code == 404


def test_run_now_and_the_runs_list(alice, adder):
    call(alice, "POST", "/api/v1/schedules", NIGHTLY)
    run = call(alice, "POST", "/api/v1/schedules/nightly/run")
    assert (
        run.status_code == 202
        and run.json()["manual"]
        and run.json()["job"]["status"] in ("queued", "dispatched")
    )
    runs = call(alice, "GET", "/api/v1/schedules/nightly/runs").json()
    assert len(runs) == 1 and runs[0]["status"] == "fired"


def test_a_refused_run_now_answers_the_refusal_and_writes_nothing(
    alice, adder, django_capture_on_commit_callbacks
):
    """Before: a 202 with a "refused" run row, and a failure counted towards pausing the schedule,
    for every refused request."""
    from accounts.models import Quota
    from functions.services import deploy as deploying
    from jobs.models import Job
    from schedules.models import ScheduleRun

    call(alice, "POST", "/api/v1/schedules", {**NIGHTLY, "max_failures": 1})
    Quota.objects.filter(tenant=alice.tenant).update(monthly_gb_seconds=0)
    spent = call(alice, "POST", "/api/v1/schedules/nightly/run")
    assert spent.status_code == 429 and spent.json()["error"]["code"] == "quota_exceeded"
    Quota.objects.filter(tenant=alice.tenant).update(monthly_gb_seconds=1000)
    with django_capture_on_commit_callbacks(execute=True):  # the invocation cache sees it
        deploying.function_set_disabled(function=adder, disabled=True, reason="abuse")
    disabled = call(alice, "POST", "/api/v1/schedules/nightly/run")
    assert disabled.status_code == 409 and disabled.json()["error"]["code"] == "function_disabled"
    assert not ScheduleRun.objects.exists() and not Job.objects.exists()
    schedule = Schedule.objects.get()
    assert schedule.enabled and schedule.consecutive_failures == 0 and schedule.last_fire_at is None


def test_the_number_of_schedules_is_capped(alice, adder):
    quota = alice.tenant.quota
    quota.max_schedules = 1
    quota.save()
    assert call(alice, "POST", "/api/v1/schedules", NIGHTLY).status_code == 201
    again = call(alice, "POST", "/api/v1/schedules", NIGHTLY)
    assert again.status_code == 409
    over = call(alice, "POST", "/api/v1/schedules", {**NIGHTLY, "name": "second"})
    # a fixed cap: waiting cannot help, so a 403 with no Retry-After (was 429, "retry in an hour")
    assert over.status_code == 403 and "Retry-After" not in over
    assert over.json()["error"]["code"] == "quota_exceeded"
    assert over.json()["error"]["details"] == {"quota": "max_schedules", "limit": 1}


def test_another_tenants_schedules_are_404_everywhere(alice, bob, adder):
    call(alice, "POST", "/api/v1/schedules", NIGHTLY)
    for method, path, body in [
        ("GET", "/api/v1/schedules/nightly", None),
        ("PATCH", "/api/v1/schedules/nightly", {"enabled": False}),
        ("DELETE", "/api/v1/schedules/nightly", None),
        ("GET", "/api/v1/schedules/nightly/runs", None),
        ("POST", "/api/v1/schedules/nightly/run", None),
    ]:
        response = call(bob, method, path, body)
        assert response.status_code == 404, (method, path)
        missing = call(bob, method, path.replace("nightly", "nothing"), body)
        assert missing.json() == json.loads(json.dumps(response.json()).replace("nightly", "nothing"))
    assert call(bob, "GET", "/api/v1/schedules").json() == []
    # and bob cannot schedule alice's function: to him it does not exist
    refused = call(bob, "POST", "/api/v1/schedules", NIGHTLY)
    assert refused.status_code == 400 and refused.json()["error"]["details"]["fields"] == {
        "function": [f"no function named {NIGHTLY['function']}"]
    }
    assert Schedule.objects.get().enabled


@pytest.mark.parametrize("field", ["max_failures"])
def test_a_number_no_column_can_hold_is_a_400_not_a_500(alice, adder, field):
    """Schemathesis found max_failures 152045052826484096 stored into an integer column: a 500."""
    call(alice, "POST", "/api/v1/schedules", NIGHTLY)
    response = call(alice, "PATCH", "/api/v1/schedules/nightly", {field: 152045052826484096})
    assert response.status_code == 400 and field in response.json()["error"]["message"]
