"""
What the host project does, run as its own process under tests.integration.settings:

    python -m tests.integration.actions login EMAIL      → {"user_id", "cookie", "ticket"}
    python -m tests.integration.actions notify EMAIL TITLE → {"event_id"}
    python -m tests.integration.actions feed EMAIL        → the HTTP API's list for that member
"""

import json
import sys

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from notifications import notify  # noqa: E402

PASSWORD = "integration-password"


def login(email):
    member = get_user_model().objects.filter(email=email).first()
    if member is None:
        member = get_user_model().objects.create_user(email, PASSWORD)
    client = Client()
    assert client.login(email=email, password=PASSWORD), "login failed"
    ticket = client.get("/notifications/ws-ticket/").json()["ticket"]
    return {"user_id": str(member.pk), "cookie": client.cookies[settings.SESSION_COOKIE_NAME].value, "ticket": ticket}


def send(email, title):
    return {"event_id": notify(get_user_model().objects.get(email=email), title).pk}


def feed(email):
    client = Client()
    client.force_login(get_user_model().objects.get(email=email))
    return client.get("/notifications/api/notifications/").json()


if __name__ == "__main__":
    action, *arguments = sys.argv[1:]
    print(json.dumps({"login": login, "notify": send, "feed": feed}[action](*arguments)))
