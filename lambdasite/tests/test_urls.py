"""Top-level routes a browser asks for on its own: /favicon.ico."""

from __future__ import annotations

import re

from django.contrib.staticfiles import finders


def test_favicon_ico_leads_to_the_icon_every_page_links(client):
    home = client.get("/").content.decode()
    linked = re.search(r'<link rel="icon" href="/static/([^"]+)"', home)
    assert linked is not None and finders.find(linked.group(1)) is not None
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301 and answer["Location"] == f"/static/{linked.group(1)}"
    icon = client.get(answer["Location"])
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml"
