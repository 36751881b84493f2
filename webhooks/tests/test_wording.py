"""Delivery errors in plain words: no errno numbers, exception class names or API jargon for people."""

from __future__ import annotations

import pytest

from webhooks.wording import plain_error


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("ConnectError: [Errno 111] Connection refused",
         "Connection refused by the endpoint (nothing listens on that port)"),
        ("ConnectError: [Errno 113] No route to host",
         "The endpoint's host cannot be reached (no route to it)"),
        ("ConnectError: [Errno 101] Network is unreachable", "The endpoint's network cannot be reached"),
        ("ReadError: [Errno 104] Connection reset by peer", "The endpoint reset the connection"),
        ("ConnectTimeout: timed out", "Connecting to the endpoint timed out"),
        ("ReadTimeout: timed out", "The endpoint did not answer in time"),
        ("RemoteProtocolError: Server disconnected without sending a response.",
         "The endpoint closed the connection without a proper HTTP answer"),
        ("ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
         "(_ssl.c:1006)", "The endpoint's TLS certificate is not trusted (self-signed certificate)"),
        ("ConnectError: [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",
         "The TLS handshake with the endpoint failed"),
        ("deadline: no complete answer within 15 s",
         "No complete answer within 15 s (the attempt's time limit)"),
        ("the receiver answered 500", "The endpoint answered 500 Internal Server Error"),
        ("the receiver answered 599", "The endpoint answered 599"),
        ("refused: hooks.invalid does not resolve ([Errno -2] Name or service not known)",
         "Not sent: hooks.invalid does not resolve (no such host name)"),
        ("refused: 10.0.0.1 is not a public address (10.0.0.1: private, in 10.0.0.0/8)",
         "Not sent: 10.0.0.1 is not a public address (10.0.0.1: private, in 10.0.0.0/8)"),
        ("OSError: [Errno 4242] Something odd", "Something odd"),
        ("KeyError: 'x'", "Sending failed: KeyError: 'x'"),
        ("the endpoint is disabled", "The endpoint is disabled"),
        ("", ""),
    ],
)  # fmt: skip
def test_it_says_what_went_wrong_in_plain_words(raw, words):
    assert plain_error(raw) == words
    assert "[Errno" not in plain_error(raw)
