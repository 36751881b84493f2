"""The hot endpoints' fast path (lambdasite/fasthttp.py) answers exactly as Django does.

Every request here is sent twice over ASGI, in process: to Django's own ASGI application and to the
application the server runs (the fast path in front of Django). Both answers must have the same
status, the same headers and the same body, byte for byte once generated values (ids, times,
measured durations) are replaced by placeholders. Each case also says which path must answer it
(checked by recording every request that reaches Django): both paths call the endpoint's one
handler (lambdasite/api/contract.py), so the fast path answers whatever the handler answers,
refusals included (computed once); Django answers only what the fast path does not parse or admit
(a body the JSON parser refuses, a content type or Accept to negotiate, a caller without a usable
key, a path Django's resolver reads its own way). Real PostgreSQL and Redis; the ``?wait`` cases
run a real worker with Docker."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest

from accounts.authentication import admitted
from accounts.models import ApiKey, Membership, Quota
from accounts.services import api_key_issue, api_key_revoke, membership_set, user_get_or_create
from jobs.models import Job
from jobs.tests.test_contract import normalise
from lambdasite.asgi import FAST_ROUTES, django_asgi_app
from lambdasite.fasthttp import FastPath

pytestmark = pytest.mark.django_db(transaction=True)

ADD = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}
JSON = [(b"content-type", b"application/json")]
# measured, not chosen: they differ between two runs of the same job
_MEASURED = re.compile(
    r'"(duration_ms|start_ms|init_ms|cpu_ms|billed_ms|gb_seconds|cost|queue_wait_ms|worker)":'
    r'("[^"]*"|[-0-9.eE]+|null)'
)


class Recorder:
    """Django's ASGI app, counting the requests that reach it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        return await django_asgi_app(scope, receive, send)


async def call(app, method: str, path: str, *, query: str = "", headers=(), body: bytes = b"") -> dict:
    """One request over ASGI, as uvicorn would make it."""
    all_headers = [(b"host", b"testserver"), *headers]
    if method != "GET" or body:
        all_headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": all_headers,
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    delivered = False

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the client stays connected

    messages = []

    async def send(message):
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return {"status": start["status"], "headers": headers, "body": content}


def comparable(answer: dict) -> dict:
    headers = dict(answer["headers"])
    assert int(headers.pop("content-length")) == len(answer["body"])
    text = normalise(answer["body"].decode())
    text = _MEASURED.sub(lambda m: f'"{m.group(1)}":<measured>', text)
    return {
        "status": answer["status"],
        "headers": {name: normalise(value) for name, value in headers.items()},
        "body": text,
    }


class Paths:
    def __init__(self) -> None:
        self.django = Recorder()
        self.fast_django = Recorder()
        self.fast = FastPath(self.fast_django, FAST_ROUTES, admitted)

    async def both(self, method, path, *, fast: bool, **request) -> dict:
        """The same request through both paths; -> the fast path's answer (already compared)."""
        via_django = await call(self.django, method, path, **request)
        before = self.fast_django.calls
        via_fast = await call(self.fast, method, path, **request)
        assert comparable(via_fast)["headers"] == comparable(via_django)["headers"], (method, path)
        assert comparable(via_fast) == comparable(via_django), (method, path, request)
        fell_through = self.fast_django.calls > before
        assert fell_through is not fast, f"expected the {'fast' if fast else 'Django'} path to answer"
        return via_fast


def auth(persona_key: str):
    return [(b"authorization", f"Bearer {persona_key}".encode())]


def run(coroutine):
    return asyncio.run(coroutine)


def test_submits_valid_and_invalid_answer_the_same(alice):
    paths = Paths()
    key = auth(alice.key)

    async def scenario():
        ok = await paths.both(
            "POST", "/api/v1/jobs", fast=True, headers=key + JSON, body=json.dumps(ADD).encode()
        )
        assert ok["status"] == 202 and ok["headers"]["location"].startswith("/api/v1/jobs/")
        full = {**ADD, "handler": "add", "code": "def add(a, b):\n    return a + b\n"}
        full.update(timeout_ms=2000, memory_mb=64, max_retries=1)
        await paths.both(
            "POST", "/api/v1/jobs", fast=True, headers=key + JSON, body=json.dumps(full).encode()
        )
        await paths.both(
            "POST",
            "/api/v1/jobs",
            fast=True,
            headers=key + [(b"content-type", b"application/json; charset=utf-8"), (b"accept", b"*/*")],
            body=json.dumps({"runtime": "node", "code": "function main() { return 'é' }"}).encode(),
        )
        refused = [
            {**ADD, "runtime": "ruby"},
            {**ADD, "code": "   "},
            {**ADD, "colour": "red"},
            {**ADD, "args": {"a": 1}},
            {**ADD, "args": None},
            {**ADD, "timeout_ms": "5000"},
            {**ADD, "timeout_ms": 50},
            {**ADD, "timeout_ms": 10**9},  # the tenant's cap: refused by the service
            {**ADD, "handler": " main"},  # trimmed by the serializer: accepted, through Django
            {**ADD, "handler": "1abc"},
            {**ADD, "max_retries": True},
            {**ADD, "delay_s": 5},  # delayed runs: the serializer's (accepted, through Django)
            [ADD],
            {**ADD, "egress": ["api.example.com:443"], "env": {"A": "1"}},  # accepted
            {**ADD, "egress": "public"},  # beyond max_egress: 403
            {**ADD, "egress": ["api.example.com"]},
            {**ADD, "env": {"PATH": "/tmp"}},
            {**ADD, "secrets": {"KEY": "missing"}},  # not a secret of the tenant
        ]
        for body in refused:
            answer = await paths.both(
                "POST", "/api/v1/jobs", fast=True, headers=key + JSON, body=json.dumps(body).encode()
            )
            assert answer["status"] in (202, 400, 403, 413), body
        # what the API's JSON parser refuses (or decodes its own way) is Django's; the rest, the handler's
        for raw, fast in (
            (b"{", False),
            (b"", True),
            (b'{"runtime": NaN}', False),
            (b'{"code": "\\u0000"}', True),
            (b'{"code": "\\ud800"}', False),
        ):
            await paths.both("POST", "/api/v1/jobs", fast=fast, headers=key + JSON, body=raw)
        body = json.dumps(ADD).encode()
        await paths.both(
            "POST", "/api/v1/jobs", fast=False, headers=key + [(b"content-type", b"text/plain")], body=body
        )
        await paths.both(
            "POST", "/api/v1/jobs", fast=False, headers=key + JSON + [(b"accept", b"text/html")], body=body
        )
        await paths.both("POST", "/api/v1/jobs", fast=True, query="wait=abc", headers=key + JSON, body=body)
        await paths.both("POST", "/api/v1/jobs", fast=True, query="wait=99", headers=key + JSON, body=body)
        await paths.both(
            "POST",
            "/api/v1/jobs",
            fast=True,
            headers=key + JSON + [(b"idempotency-key", b"x" * 256)],
            body=body,
        )

    run(scenario())
    # every accepted request made exactly one job on either path: 3 fast, " main", delay_s and egress
    assert Job.objects.filter(tenant=alice.tenant).count() == 2 * (3 + 3)


def test_callers_that_may_not_submit_answer_the_same(alice, bob):
    paths = Paths()
    body = json.dumps(ADD).encode()
    viewer = user_get_or_create(email="vera@acme.test", password="pw")
    membership_set(tenant=alice.tenant, user=viewer, role=Membership.Role.VIEWER)
    viewers = api_key_issue(tenant=alice.tenant, name="viewer's", created_by=viewer).plaintext
    read_only = api_key_issue(
        tenant=alice.tenant, name="reader", created_by=alice.user, scope=ApiKey.Scope.READ
    ).plaintext
    revoked = api_key_issue(tenant=alice.tenant, name="old", created_by=alice.user)

    async def scenario():
        # warm the key cache with the key first, so revoking it is seen through the cache
        await paths.both("POST", "/api/v1/jobs", fast=True, headers=auth(revoked.plaintext) + JSON, body=body)
        await asyncio.to_thread(
            api_key_revoke, api_key=revoked.api_key, by=alice.user, by_role=Membership.Role.OWNER
        )
        for headers in (
            [],
            auth("lsk_nope"),
            [(b"authorization", b"Token abc")],
            [(b"authorization", b"Bearer ")],
            auth(revoked.plaintext),
            auth(read_only),
            auth(viewers),
        ):
            answer = await paths.both("POST", "/api/v1/jobs", fast=False, headers=headers + JSON, body=body)
            assert answer["status"] in (401, 403)
        await asyncio.to_thread(_suspend, bob.tenant)
        answer = await paths.both("POST", "/api/v1/jobs", fast=False, headers=auth(bob.key) + JSON, body=body)
        assert answer["status"] == 403

    run(scenario())


def _suspend(tenant):
    tenant.is_suspended = True
    tenant.save()  # (a save bumps the auth generation: cached keys are read again)


def test_over_quota_and_idempotent_replays_answer_the_same(alice, bob):
    paths = Paths()
    body = json.dumps(ADD).encode()
    Quota.objects.filter(tenant=bob.tenant).update(monthly_gb_seconds=0)
    Quota.objects.filter(tenant=alice.tenant).update(submissions_per_minute=1)
    _auth_changed()

    async def scenario():
        spent = await paths.both("POST", "/api/v1/jobs", fast=True, headers=auth(bob.key) + JSON, body=body)
        assert spent["status"] == 429 and spent["headers"]["retry-after"]
        once = [(b"idempotency-key", b"order-1")]
        first = await call(
            paths.django, "POST", "/api/v1/jobs", headers=auth(alice.key) + JSON + once, body=body
        )
        assert first["status"] == 202
        replay = await paths.both(
            "POST", "/api/v1/jobs", fast=True, headers=auth(alice.key) + JSON + once, body=body
        )
        assert replay["status"] == 200 and json.loads(replay["body"])["id"] == json.loads(first["body"])["id"]
        other = json.dumps({**ADD, "args": [4, 4]}).encode()
        conflict = await paths.both(
            "POST", "/api/v1/jobs", fast=True, headers=auth(alice.key) + JSON + once, body=other
        )
        assert conflict["status"] == 422
        limited = await paths.both(
            "POST", "/api/v1/jobs", fast=True, headers=auth(alice.key) + JSON, body=body
        )
        assert limited["status"] == 429

    run(scenario())


def _auth_changed():
    from accounts import authcache

    authcache._bump()


def test_a_jobs_detail_answers_the_same(alice, bob):
    paths = Paths()
    job_id = alice.post_job(ADD).json()["id"]

    async def scenario():
        mine = await paths.both("GET", f"/api/v1/jobs/{job_id}", fast=True, headers=auth(alice.key))
        assert json.loads(mine["body"])["id"] == job_id and json.loads(mine["body"])["attempt_history"] == []
        for headers, path, fast in (
            (auth(bob.key), f"/api/v1/jobs/{job_id}", True),  # another tenant's: not found
            (auth(alice.key), "/api/v1/jobs/00000000-0000-0000-0000-000000000000", True),
            (auth(alice.key), "/api/v1/jobs/not-a-uuid", False),
            ([], f"/api/v1/jobs/{job_id}", False),
            (auth(alice.key) + [(b"accept", b"application/json; indent=2")], f"/api/v1/jobs/{job_id}", False),
        ):
            await paths.both("GET", path, fast=fast, headers=headers)
        await paths.both("GET", f"/api/v1/jobs/{job_id}", fast=True, query="x=1", headers=auth(alice.key))

    run(scenario())


def test_invoking_a_function_answers_the_same(alice):
    from functions.tests.support import deploy

    assert deploy(alice, "adder").status_code == 201
    paths = Paths()
    key = auth(alice.key)

    async def scenario():
        path = "/api/v1/functions/adder/invoke"
        ok = await paths.both("POST", path, fast=True, headers=key + JSON, body=b'{"args": [1, 2]}')
        assert ok["status"] == 202 and json.loads(ok["body"])["function"] == "adder"
        await paths.both(
            "POST",
            path,
            fast=True,
            query="qualifier=1",
            headers=key + JSON,
            body=b'{"args": [1, 2], "timeout_ms": 1000}',
        )
        for query, body in (
            ("", b'{"args": 3}'),
            ("", b'{"handler": "x"}'),
            ("qualifier=9", b'{"args": []}'),  # no such version
            ("qualifier=nope", b'{"args": []}'),
            ("", b""),
        ):
            await paths.both("POST", path, fast=True, query=query, headers=key + JSON, body=body)
        await paths.both("POST", "/api/v1/functions/ghost/invoke", fast=True, headers=key + JSON, body=b"{}")

    run(scenario())


def test_what_django_reads_differently_falls_through(alice):
    """A route regex's "$" matches before a trailing newline (/api/v1/jobs%0A), which Django's
    resolver answers with a 404. A header named with underscores (X_Api_Key, Idempotency_Key) is
    read as the hyphenated one by some Django versions and servers and dropped by others (Django
    5.2.x drops it): whatever Django does with it, Django answers."""
    from functions.tests.support import deploy

    assert deploy(alice, "adder").status_code == 201
    job_id = alice.post_job(ADD).json()["id"]
    paths = Paths()
    key = auth(alice.key)
    body = json.dumps(ADD).encode()

    async def scenario():
        for method, path, payload in (
            ("POST", "/api/v1/jobs\n", body),
            ("GET", f"/api/v1/jobs/{job_id}\n", b""),
            ("POST", "/api/v1/functions/adder/invoke\n", b'{"args": [1, 2]}'),
        ):
            answer = await paths.both(method, path, fast=False, headers=key + JSON, body=payload)
            assert answer["status"] == 404, path
        by_underscore = [(b"x_api_key", alice.key.encode())]
        await paths.both("POST", "/api/v1/jobs", fast=False, headers=by_underscore + JSON, body=body)
        await paths.both("GET", f"/api/v1/jobs/{job_id}", fast=False, headers=[(b"X_Api_Key", b"x")] + key)
        once = [(b"idempotency_key", b"order-9")]
        await call(paths.django, "POST", "/api/v1/jobs", headers=key + JSON + once, body=body)
        await paths.both("POST", "/api/v1/jobs", fast=False, headers=key + JSON + once, body=body)
        await paths.both(
            "POST", "/api/v1/functions/adder/invoke", fast=False, headers=key + JSON + once, body=b"{}"
        )

    run(scenario())


def test_args_no_service_could_store_fall_through_to_the_same_400(alice):
    from functions.tests.support import deploy

    assert deploy(alice, "adder").status_code == 201
    paths = Paths()
    key = auth(alice.key)
    code = json.dumps(ADD["code"])

    async def scenario():
        # nested too deep: the parser's 400 (Django); out of range: the handler's (either path)
        for args, fast in (
            ("[" * 500 + "]" * 500, False),
            ("[" * 5_000 + "]" * 5_000, False),
            ("[1e400]", True),
            ("[[-1e999]]", True),
        ):
            submit = f'{{"runtime": "python", "code": {code}, "args": {args}}}'.encode()
            answer = await paths.both("POST", "/api/v1/jobs", fast=fast, headers=key + JSON, body=submit)
            assert answer["status"] == 400, args
            invoke = f'{{"args": {args}}}'.encode()
            path = "/api/v1/functions/adder/invoke"
            answer = await paths.both("POST", path, fast=fast, headers=key + JSON, body=invoke)
            assert answer["status"] == 400, args

    run(scenario())
    assert not Job.objects.exists()


def test_request_metrics_count_both_paths_alike(alice):
    from django_prometheus.middleware import Metrics

    counter = Metrics.get_instance().responses_by_status_view_method
    paths = Paths()

    def count() -> float:
        return counter.labels(status="202", view="api-jobs", method="POST")._value.get()

    async def scenario():
        start = count()
        await call(
            paths.django,
            "POST",
            "/api/v1/jobs",
            headers=auth(alice.key) + JSON,
            body=json.dumps(ADD).encode(),
        )
        middle = count()
        await call(
            paths.fast, "POST", "/api/v1/jobs", headers=auth(alice.key) + JSON, body=json.dumps(ADD).encode()
        )
        assert middle - start == 1 and count() - middle == 1
        assert paths.fast_django.calls == 0

    run(scenario())


def test_a_waited_submit_answers_the_same_with_the_result(alice, run_worker):
    """?wait: the fast path sends the finishing worker's published body as it is; Django parses and
    renders it again. Both must be the same bytes."""
    paths = Paths()
    body = json.dumps(
        {**ADD, "code": "def main(a, b):\n    print('hi é')\n    return {'sum': a + b, 'ü': [1.5, None]}\n"}
    ).encode()

    def submit_and_drain(app, body=body) -> dict:
        """The request waits on a thread of its own; the worker runs here (RQ wants the main thread)."""
        answers = []
        request = call(
            app, "POST", "/api/v1/jobs", query="wait=20", headers=auth(alice.key) + JSON, body=body
        )
        waiting = threading.Thread(target=lambda: answers.append(asyncio.run(request)))
        waiting.start()
        time.sleep(0.5)  # the submit is in and waiting
        run_worker()
        waiting.join(30)
        return answers[0]

    via_django = submit_and_drain(paths.django)
    via_fast = submit_and_drain(paths.fast)
    assert via_fast["status"] == 200
    assert json.loads(via_fast["body"])["result"] == {"sum": 5, "ü": [1.5, None]}
    assert comparable(via_fast) == comparable(via_django)
    assert paths.fast_django.calls == 0
    # a result too large to publish: both paths read the finished job from PostgreSQL
    big = json.dumps({**ADD, "code": "def main(a, b):\n    return 'x' * 20000\n"}).encode()
    via_django, via_fast = submit_and_drain(paths.django, big), submit_and_drain(paths.fast, big)
    assert via_fast["status"] == 200 and json.loads(via_fast["body"])["result"] == "x" * 20000
    assert comparable(via_fast) == comparable(via_django)
    assert paths.fast_django.calls == 0

    async def scenario():
        short = await paths.both(
            "POST", "/api/v1/jobs", fast=True, query="wait=0.2", headers=auth(alice.key) + JSON, body=body
        )
        assert short["status"] == 202  # no worker: the 202 after the wait

    run(scenario())
