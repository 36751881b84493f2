"""The request a function receives and the answer it gives (routes/request.py, routes/response.py,
routes/cors.py): pure shaping, no Django."""

from __future__ import annotations

import base64

import pytest

from routes import cors, request, response


def test_the_body_is_text_when_it_can_be_and_base64_when_not():
    assert request.body_fields(b'{"a": 1}') == {"body": '{"a": 1}', "is_base64": False}
    assert request.body_fields("é".encode()) == {"body": "é", "is_base64": False}
    raw = bytes(range(256))
    assert request.body_fields(raw) == {"body": base64.b64encode(raw).decode(), "is_base64": True}
    assert request.body_fields(b"a\x00b")["is_base64"] is True  # PostgreSQL's jsonb cannot hold NUL
    for body in (b"", b"x", raw):
        assert request.body_bytes(request.body_fields(body)) == body


def test_query_and_headers_are_multi_valued():
    assert request.query_of(b"a=1&a=2&b=&c=%C3%A9") == {"a": ["1", "2"], "b": [""], "c": ["é"]}
    headers = [("X-A", "1"), ("x-a", "2"), ("content-type", "text/plain")]
    assert request.redacted_headers(headers, auth_type="none", platform_cookies=()) == {
        "x-a": ["1", "2"],
        "content-type": ["text/plain"],
    }


def test_only_the_platform_s_credentials_are_redacted():
    headers = [
        ("authorization", "Basic dTpw"),
        ("x-api-key", "lsk_x"),
        ("x-hub-signature-256", "sha256=ab"),
        ("cookie", "sessionid=s3cret; theme=dark; csrftoken=t"),
    ]
    keep = request.redacted_headers(headers, auth_type="hmac", platform_cookies=("sessionid", "csrftoken"))
    assert keep["authorization"] == ["Basic dTpw"] and keep["x-hub-signature-256"] == ["sha256=ab"]
    assert keep["cookie"] == ["theme=dark"]
    for auth in ("basic", "api_key"):
        redacted = request.redacted_headers(
            headers, auth_type=auth, platform_cookies=("sessionid", "csrftoken")
        )
        assert "authorization" not in redacted
    assert "x-api-key" not in request.redacted_headers(headers, auth_type="api_key", platform_cookies=())
    only_platform = [("cookie", "sessionid=s3cret")]
    assert request.redacted_headers(only_platform, auth_type="none", platform_cookies=("sessionid",)) == {}


def test_a_nul_in_the_query_makes_the_request_unstorable():
    built = request.build(
        method="GET", path="/", params={}, query=request.query_of(b"a=%00"), headers={}, body=b"",
        client_ip="", route="/", delivery_id=None,
    )  # fmt: skip
    assert request.unstorable(built)


def test_any_json_value_is_a_200_json_answer():
    for value, body in (({"ok": True}, b'{"ok":true}'), ([1, 2], b"[1,2]"), ("hi", b'"hi"'), (None, b"null")):
        shaped = response.shape(value)
        assert (shaped.status, shaped.headers, shaped.body) == (
            200,
            [("content-type", "application/json")],
            body,
        )
    # a status that is not an integer, or an unknown key: data, not a response
    assert response.shape({"status": "ok"}).status == 200
    assert response.shape({"status": 201, "data": 1}).body == b'{"status":201,"data":1}'


def test_a_response_sets_status_headers_and_a_text_or_binary_body():
    shaped = response.shape({"status": 201, "headers": {"X-Thing": "1", "Vary": ["A", "B"]}, "body": "made"})
    assert shaped.status == 201 and shaped.body == b"made"
    assert shaped.headers == [
        ("content-type", "text/plain; charset=utf-8"),
        ("x-thing", "1"),
        ("vary", "A"),
        ("vary", "B"),
    ]
    png = bytes(range(256))
    binary = response.shape({"status": 200, "headers": {"Content-Type": "image/png"},
                             "body": base64.b64encode(png).decode(), "is_base64": True})  # fmt: skip
    assert binary.body == png and binary.headers == [("content-type", "image/png")]
    assert response.shape({"status": 200, "body": {"a": 1}}).headers == [("content-type", "application/json")]
    assert response.shape({"status": 204, "body": "ignored"}).body == b""


def test_the_platform_keeps_connection_and_cookie_headers():
    shaped = response.shape(
        {
            "status": 200,
            "headers": {
                "Set-Cookie": "sessionid=evil",
                "Content-Length": "1",
                "Transfer-Encoding": "chunked",
                "Connection": "close",
                "Keep-Alive": "1",
                "Strict-Transport-Security": "max-age=0",
                "Access-Control-Allow-Origin": "*",
                "X-Ok": "yes",
            },
            "body": "",
        },
        cors_managed=True,
    )
    assert [name for name, _ in shaped.headers] == ["content-type", "x-ok"]


@pytest.mark.parametrize(
    "result, problem",
    [
        ({"status": 99}, "200 to 599"),
        ({"status": 200, "headers": {"Bad Name": "x"}}, "not a header name"),
        ({"status": 200, "headers": {"X": "a\r\nSet-Cookie: x"}}, "cannot carry"),
        ({"status": 200, "headers": {"X": {"a": 1}}}, "must be text"),
        ({"status": 200, "headers": ["X"]}, "must be an object"),
        ({"status": 200, "body": "!!", "is_base64": True}, "not valid base64"),
        ({"status": 200, "body": "x", "is_base64": "yes"}, "true or false"),
    ],
)
def test_a_malformed_response_is_refused_saying_why(result, problem):
    with pytest.raises(response.BadResponse, match=problem):
        response.shape(result)


def test_a_finished_job_s_answer_hides_its_error_unless_exposed():
    error = {"type": "ValueError", "message": "boom", "traceback": "Traceback ..."}
    failed = response.of_job("j1", "failed", None, error)
    assert failed.status == 502 and b"Traceback" not in failed.body and b'"job_id":"j1"' in failed.body
    exposed = response.of_job("j1", "failed", None, error, expose_errors=True)
    assert b"Traceback" in exposed.body
    assert response.of_job("j1", "timed_out", None, {"type": "Timeout"}).status == 504
    assert response.of_job("j1", "dead", None, {"type": "Timeout"}).status == 504
    assert response.of_job("j1", "succeeded", {"status": 42}, None).status == 502


def test_cors_preflight_and_actual_headers():
    origins = ["https://app.example.com"]
    asked = {"origin": "https://app.example.com", "access-control-request-method": "POST",
             "access-control-request-headers": "authorization, content-type"}  # fmt: skip
    assert cors.is_preflight("OPTIONS", asked)
    answer = dict(cors.preflight(origins, ["POST"], asked))
    assert answer["access-control-allow-origin"] == "https://app.example.com"
    assert answer["access-control-allow-headers"] == "authorization, content-type"
    assert cors.preflight(origins, ["GET"], asked) is None
    assert cors.preflight(origins, ["POST"], {**asked, "origin": "https://evil.example"}) is None
    assert cors.actual(["*"], {"origin": "https://x.example"}) == [
        ("access-control-allow-origin", "*"),
        ("vary", "Origin"),
    ]
    assert cors.actual(origins, {}) == [("vary", "Origin")]
    assert cors.origin_problem("https://a.example/path") and not cors.origin_problem("http://localhost:3000")
