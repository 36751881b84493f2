"""`lambdasite secret …` and deploy's --egress/--secret/--env, in process: the client's own HTTP code
answered by the Django app through its test client (PostgreSQL and Redis real, no server process)."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.parse

import pytest
from django.test import Client as DjangoClient

from accounts.models import Membership
from accounts.services import api_key_issue, membership_set, user_get_or_create
from client import lambdasite_cli, lambdasite_client, lambdasite_secrets
from functions.models import FunctionVersion
from vault.services import secret_values

pytestmark = pytest.mark.django_db

VALUE = "xoxb-never-in-argv-0123"


class _Answer(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def api(monkeypatch):
    """urllib's urlopen as the client calls it, answered by the app in this process."""
    django = DjangoClient()

    def urlopen(request, timeout=None):
        parts = urllib.parse.urlsplit(request.full_url)
        headers = {
            "HTTP_" + name.upper().replace("-", "_"): value
            for name, value in request.header_items()
            if name.lower() != "content-type"
        }
        response = django.generic(
            request.get_method(),
            parts.path + ("?" + parts.query if parts.query else ""),
            data=request.data or b"",
            content_type=request.get_header("Content-type") or "application/octet-stream",
            **headers,
        )
        if response.status_code >= 400:
            raise urllib.error.HTTPError(
                request.full_url, response.status_code, "error", {}, io.BytesIO(response.content)
            )
        return _Answer(response.content)

    monkeypatch.setattr(lambdasite_client.urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("LAMBDASITE_URL", "http://testserver")


@pytest.fixture
def cli(api, alice, monkeypatch, capsys):
    def run(*argv, key: str = alice.key, stdin: str | None = None):
        monkeypatch.setenv("LAMBDASITE_KEY", key)
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = lambdasite_cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def stored(persona, name: str) -> str:
    return secret_values(tenant=persona.tenant, bindings={"X": name})[0].value


def test_secret_set_reads_the_value_from_stdin_and_prints_no_value(cli, alice):
    code, out, err = cli("secret", "set", "slack", stdin=VALUE + "\n")
    assert code == 0 and out.startswith("secret slack created (fingerprint ") and VALUE not in out + err
    assert stored(alice, "slack") == VALUE  # the final newline of `echo` dropped
    code, out, _ = cli("secret", "set", "slack", "--keep-newline", stdin="line 1\nline 2\n")
    assert code == 0 and "rotated to revision 2" in out
    assert stored(alice, "slack") == "line 1\nline 2\n"


def test_secret_set_at_a_terminal_prompts_twice_without_echo(cli, alice, monkeypatch):
    answers = iter([VALUE, VALUE, VALUE, "typo"])
    monkeypatch.setattr(lambdasite_secrets.getpass, "getpass", lambda prompt: next(answers))
    monkeypatch.setattr("sys.stdin", type("Tty", (), {"isatty": lambda self: True})())
    assert cli("secret", "set", "slack")[0] == 0 and stored(alice, "slack") == VALUE
    code, _, err = cli("secret", "set", "slack")
    assert code == 2 and "the two values differ" in err
    assert stored(alice, "slack") == VALUE


def test_a_value_is_never_taken_from_the_command_line(cli):
    with pytest.raises(SystemExit) as refused:
        cli("secret", "set", "slack", VALUE)
    assert refused.value.code == 2


def test_secret_list_follows_the_pages_and_rm_deletes(cli, alice, monkeypatch):
    from vault.api.views import SecretPagination

    monkeypatch.setattr(SecretPagination, "max_page_size", 2)
    for name in ("a", "b", "c"):
        cli("secret", "set", name, stdin="v")
    code, out, _ = cli("secret", "list")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["a", "b", "c"]
    assert "r1" in out and "API key acme key" in out
    assert cli("secret", "rm", "b")[0] == 0
    assert [line.split()[0] for line in cli("secret", "list")[1].splitlines()] == ["a", "c"]
    code, _, err = cli("secret", "rm", "b")
    assert code == 2 and "secret_not_found" in err


def test_a_members_key_binds_but_cannot_set(cli, alice):
    user = user_get_or_create(email="m@acme.test", password="pw")
    membership_set(tenant=alice.tenant, user=user, role=Membership.Role.MEMBER)
    member = api_key_issue(tenant=alice.tenant, name="m", created_by=user).plaintext
    code, _, err = cli("secret", "set", "slack", key=member, stdin="v")
    assert code == 2 and "owner_required" in err


def test_deploy_takes_egress_secrets_and_env_and_keeps_them_for_the_next_version(cli, alice, tmp_path):
    handler = tmp_path / "handler.py"
    handler.write_text("import os\n\ndef main():\n    return os.environ['CHANNEL']\n")
    cli("secret", "set", "slack", stdin=VALUE)
    flags = ["--egress", "hooks.slack.com:443", "--egress", "*.slack.com:443",
             "--secret", "TOKEN=slack", "--env", "CHANNEL=ops", "--env", "GREETING=a=b"]  # fmt: skip
    code, out, err = cli("deploy", str(handler), "--name", "notify", *flags)
    assert code == 0, err
    assert json.loads(out) == {"function": "notify", "version": 1, "status": "ready"}
    first = FunctionVersion.objects.get(number=1)
    assert first.egress_allow == ["*.slack.com:443", "hooks.slack.com:443"]
    assert first.secrets == {"TOKEN": "slack"} and first.env == {"CHANNEL": "ops", "GREETING": "a=b"}
    assert cli("deploy", str(handler), "--name", "notify")[0] == 0
    second = FunctionVersion.objects.get(number=2)
    assert (second.egress_allow, second.secrets, second.env) == (first.egress_allow, first.secrets, first.env)
    assert cli("deploy", str(handler), "--name", "notify", "--egress", "none", "--no-env")[0] == 0
    third = FunctionVersion.objects.get(number=3)
    assert (third.egress_mode, third.env, third.secrets) == ("none", {}, {"TOKEN": "slack"})


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--egress", "none", "--egress", "a.example.com:443"], "stands alone"),
        (["--env", "NO_EQUALS"], "takes NAME=VALUE"),
        (["--secret", "A=x", "--secret", "A=y"], "given twice"),
        (["--env", "A=1", "--no-env"], "exclude each other"),
    ],
)
def test_deploy_refuses_a_malformed_flag(cli, tmp_path, flags, says, capsys):
    handler = tmp_path / "handler.py"
    handler.write_text("def main():\n    return 1\n")
    with pytest.raises(SystemExit) as refused:
        cli("deploy", str(handler), "--name", "fn", *flags)
    assert refused.value.code == 2 and says in capsys.readouterr().err


def test_deploy_reports_the_servers_refusal(cli, tmp_path):
    handler = tmp_path / "handler.py"
    handler.write_text("def main():\n    return 1\n")
    code, _, err = cli("deploy", str(handler), "--name", "fn", "--secret", "K=missing")
    assert code == 2 and "unknown_secret" in err and "missing" in err
    code, _, err = cli("deploy", str(handler), "--name", "fn", "--egress", "public")
    assert code == 2 and "egress_not_allowed" in err
