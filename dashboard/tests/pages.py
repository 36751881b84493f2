"""What the dashboard's page tests share: a signed-in browser (Django's test client) and a job to submit."""

from __future__ import annotations

from django.test import Client

ADD = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client
