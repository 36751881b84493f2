"""Where a form or the sign-in page sends the browser next: a page of the dashboard on this site,
never a ``next`` an attacker chose.

``next`` comes from the request, so it is an open redirect unless checked: a foreign URL
(``https://evil``, ``//evil``, ``/\\evil``) sends a signed-in person to a look-alike site, and a
path elsewhere on this site (``/admin/…``, ``/api/…``, ``/app/../logout/``) lends our address to
whatever that page does. Django's ``url_has_allowed_host_and_scheme`` rules out the first kind
(other hosts and schemes); a form only ever sends a path, so anything with a scheme or host is
refused too; the path, with its dot segments resolved as a browser resolves them (``%2e%2e``
included), must then be a dashboard page (or the password page sign-in may be on the way to)."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

from django.contrib.auth import views as auth_views
from django.utils.http import url_has_allowed_host_and_scheme

PREFIXES = ("/app/", "/password/")


def dashboard_path(request, target: str | None) -> bool:
    """Whether ``target`` is a page of this site under PREFIXES, safe to redirect to."""
    if not target or any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in target):
        return False
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return False
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return False
    path = posixpath.normpath(unquote(parts.path))
    return any((path + "/").startswith(prefix) for prefix in PREFIXES)


def next_or(request, fallback: str) -> str:
    """The POSTed ``next`` when it is a dashboard page, else ``fallback`` (a URL or a URL name)."""
    target = request.POST.get("next", "")
    return target if dashboard_path(request, target) else fallback


class LoginView(auth_views.LoginView):
    """Django's sign-in, whose ``next`` leads only to a dashboard page (Django's own check lets it
    be any path of this site); anything else signs in to LOGIN_REDIRECT_URL."""

    redirect_authenticated_user = True

    def get_redirect_url(self) -> str:
        target = super().get_redirect_url()
        return target if dashboard_path(self.request, target) else ""
