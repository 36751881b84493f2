"""Operators' admin for schedules, webhooks and functions: every tenant's, with their actions."""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model

from functions.models import Function
from functions.tests.support import make_adder
from schedules.models import Schedule
from schedules.services.manage import ScheduleSpec, schedule_create
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    get_user_model().objects.create_superuser("op@example.com", "op@example.com", "pw")
    client.login(username="op@example.com", password="pw")
    return client


@pytest.fixture
def scheduled(alice):
    make_adder(alice.tenant)
    return schedule_create(
        tenant=alice.tenant, name="nightly", spec=ScheduleSpec(cron="0 2 * * *", function="adder")
    )


def test_operators_pause_and_resume_any_schedule(operator, scheduled):
    assert "nightly" in operator.get("/admin/schedules/schedule/").content.decode()
    operator.post("/admin/schedules/schedule/", {"action": "pause", "_selected_action": [scheduled.pk]})
    paused = Schedule.objects.get()
    assert not paused.enabled and "paused by op@example.com" in paused.paused_reason
    operator.post("/admin/schedules/schedule/", {"action": "resume", "_selected_action": [scheduled.pk]})
    assert Schedule.objects.get().enabled
    assert operator.get(f"/admin/schedules/schedule/{scheduled.pk}/change/").status_code == 200


def test_operators_disable_endpoints_and_never_see_their_secrets(operator, alice):
    endpoint = WebhookEndpoint.objects.create(
        tenant=alice.tenant, url="https://example.com/h", events=["job.failed"], secret="whsec_c2VjcmV0"
    )
    page = operator.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert "whsec_c2VjcmV0" not in page
    operator.post(
        "/admin/webhooks/webhookendpoint/", {"action": "disable", "_selected_action": [str(endpoint.pk)]}
    )
    endpoint.refresh_from_db()
    assert not endpoint.enabled and "disabled by op@example.com" in endpoint.disabled_reason
    assert operator.get("/admin/webhooks/delivery/").status_code == 200


def test_operators_disable_functions_and_see_layers(operator, scheduled):
    function = Function.objects.get()
    answer = operator.post(
        "/admin/functions/function/", {"action": "disable", "_selected_action": [function.pk]}, follow=True
    )
    assert Function.objects.get().is_disabled and "1 function(s) disabled." in answer.content.decode()
    assert "disabled by op@example.com" in Function.objects.get().disabled_reason
    operator.post("/admin/functions/function/", {"action": "enable", "_selected_action": [function.pk]})
    assert not Function.objects.get().is_disabled
    assert operator.get("/admin/functions/dependencylayer/").status_code == 200
    assert operator.get("/admin/functions/functionversion/").status_code == 200


def test_the_admin_index_names_deliveries_in_plain_english(operator):
    page = operator.get("/admin/").content.decode()
    assert "Deliveries" in page and "Deliverys" not in page


def test_no_model_has_a_naive_plural():
    """Django adds an "s": "deliverys", "aliass"."""
    ours = ("accounts", "jobs", "functions", "schedules", "webhooks")
    naive = [
        str(model._meta.verbose_name_plural)
        for model in apps.get_models()
        if model._meta.app_label in ours
        and re.search(r"([^aeiou]ys|ss|xs|chs|shs)$", str(model._meta.verbose_name_plural))
    ]
    assert naive == []
