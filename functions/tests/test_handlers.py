"""functions.api.handlers: invoking a function by name as both transports call it, without HTTP."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from accounts.authentication import principal_for
from functions.api import handlers
from functions.exceptions import FunctionNotFound, VersionNotFound
from functions.tests.support import deploy
from jobs.models import Job
from lambdasite.api.contract import Call
from lambdasite.exceptions import ValidationFailed

pytestmark = pytest.mark.django_db


def call(persona, data, query: str = "", headers=None) -> Call:
    return Call(principal_for(f"Bearer {persona.key}", ""), data, QueryDict(query), headers or {})


def test_an_invocation_is_a_job_of_the_chosen_version(alice):
    assert deploy(alice, "adder").status_code == 201
    reply = handlers.invoke(call(alice, {"args": [1, 2], "timeout_ms": 1000}, "qualifier=1&wait=3"), "adder")
    assert reply.status == 202 and reply.hold.seconds == 3
    assert (reply.body["function"], reply.body["version"]) == ("adder", 1)
    assert reply.body["limits"]["timeout_ms"] == 1000
    bare = handlers.invoke(call(alice, {}), "adder")  # no body: no fields
    assert bare.status == 202 and Job.objects.get(pk=bare.body["id"]).args == []
    with pytest.raises(ValidationFailed, match="No data provided"):  # a body of null, as submit's
        handlers.invoke(call(alice, None), "adder")


def test_refusals_name_what_is_wrong_and_write_nothing(alice, bob):
    assert deploy(alice, "adder").status_code == 201
    with pytest.raises(ValidationFailed, match="qualifier: "):
        handlers.invoke(call(alice, {"args": []}, "qualifier=a%20b"), "adder")
    with pytest.raises(ValidationFailed, match="handler: unknown field"):
        handlers.invoke(call(alice, {"handler": "x"}), "adder")
    with pytest.raises(VersionNotFound):
        handlers.invoke(call(alice, {"args": []}, "qualifier=9"), "adder")
    with pytest.raises(FunctionNotFound):
        handlers.invoke(call(bob, {"args": []}), "adder")  # another tenant's: not found
    assert not Job.objects.exists()
