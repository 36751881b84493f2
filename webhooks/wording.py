"""A delivery attempt's error in plain words for people ("Connection refused by the endpoint"), from the
raw text stored with the attempt ("ConnectError: [Errno 111] Connection refused"), which the API keeps
and the pages show on demand."""

from __future__ import annotations

import errno
import re
from http import HTTPStatus

ERRNO_WORDS = {
    errno.ECONNREFUSED: "Connection refused by the endpoint (nothing listens on that port)",
    errno.ECONNRESET: "The endpoint reset the connection",
    errno.ECONNABORTED: "The connection to the endpoint was aborted",
    errno.EHOSTUNREACH: "The endpoint's host cannot be reached (no route to it)",
    errno.ENETUNREACH: "The endpoint's network cannot be reached",
    errno.ETIMEDOUT: "Connecting to the endpoint timed out",
    errno.EPIPE: "The endpoint closed the connection while the event was being sent",
    errno.EADDRNOTAVAIL: "The endpoint's address cannot be used from here",
}
# getaddrinfo's codes (negative): the name's lookup
LOOKUP_WORDS = {
    -2: "no such host name",
    -3: "the name server did not answer; try again later",
    -5: "the host name has no address",
    -8: "no such host name",
}
TYPE_WORDS = {
    "ConnectTimeout": "Connecting to the endpoint timed out",
    "ReadTimeout": "The endpoint did not answer in time",
    "WriteTimeout": "Sending the event to the endpoint timed out",
    "PoolTimeout": "Connecting to the endpoint timed out",
    "RemoteProtocolError": "The endpoint closed the connection without a proper HTTP answer",
    "LocalProtocolError": "The request could not be sent as HTTP",
    "UnsupportedProtocol": "The URL's scheme is not http or https",
}
_ERRNO = re.compile(r"\[Errno (-?\d+)\] ?([^\]\)]*)")
_TYPE = re.compile(r"^([A-Z][A-Za-z]*(?:Error|Timeout|Exception|Protocol)): ?")
_ANSWERED = re.compile(r"^the receiver answered (\d{3})$")


def plain_error(raw: str) -> str:
    """What went wrong, worded for a person; the raw text when it is already plain."""
    raw = (raw or "").strip()
    if not raw:
        return ""
    if raw.startswith("refused: "):
        return "Not sent: " + _errnos(raw.removeprefix("refused: "), lookup=True)
    if raw.startswith("deadline: "):
        return _capital(raw.removeprefix("deadline: ")) + " (the attempt's time limit)"
    answered = _ANSWERED.match(raw)
    if answered:
        code = int(answered.group(1))
        phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else ""
        return f"The endpoint answered {code}{' ' + phrase if phrase else ''}"
    kind = _TYPE.match(raw)
    rest = raw[kind.end() :] if kind else raw
    if "CERTIFICATE_VERIFY_FAILED" in rest:
        detail = rest.split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip(" :")
        return "The endpoint's TLS certificate is not trusted" + (f" ({detail})" if detail else "")
    if "[SSL" in rest:
        return "The TLS handshake with the endpoint failed"
    found = _ERRNO.search(rest)
    if found:
        return _errno_words(int(found.group(1)), found.group(2))
    if kind and kind.group(1) in TYPE_WORDS:
        return TYPE_WORDS[kind.group(1)]
    if kind:  # an error of no known kind: said as it is
        return f"Sending failed: {raw}"
    return _capital(rest)


def _errnos(text: str, *, lookup: bool = False) -> str:
    """Each "[Errno N] text" inside ``text`` said in words."""
    return _ERRNO.sub(
        lambda m: _errno_words(int(m.group(1)), m.group(2), lower=True) if lookup else m.group(0), text
    )


def _errno_words(number: int, text: str, *, lower: bool = False) -> str:
    words = LOOKUP_WORDS.get(number) if number < 0 else ERRNO_WORDS.get(number)
    words = words or text.strip() or f"error {number}"
    return words[0].lower() + words[1:] if lower and not words[:3].isupper() else _capital(words)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
