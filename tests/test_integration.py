"""
The apps inside another project, set up as docs/integrate.md says: tests/integration/settings.py
has its own user model (UUID keys, email login, no is_staff), keeps sessions in the cache (Redis),
and has no admin. Everything runs in subprocesses under those settings: migrate, check, a relay,
and the host's own code (tests/integration/actions.py).
"""

import asyncio
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from .relay import BASE_DIR, start_relay

SETTINGS = "tests.integration.settings"
EMAIL = "member@example.com"


def run(env, *args):
    result = subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def action(env, *args):
    return json.loads(run(env, "-m", "tests.integration.actions", *args).strip().splitlines()[-1])


@pytest.fixture
def host_project(tmp_path):
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE=SETTINGS,
        INTEGRATION_DATABASE=str(tmp_path / "host.sqlite3"),
        REDIS_URL=settings.CACHES["default"]["LOCATION"],
    )
    run(env, "manage.py", "migrate", "--verbosity", "0")
    return env


async def test_the_apps_work_in_a_project_with_its_own_user_model_and_session_engine(host_project, tmp_path, ws_clients):
    checked = await asyncio.to_thread(run, host_project, "manage.py", "check")
    assert "no issues" in checked

    relay = await asyncio.to_thread(
        start_relay, tmp_path, SETTINGS, {"INTEGRATION_DATABASE": host_project["INTEGRATION_DATABASE"]}
    )
    try:
        login = await asyncio.to_thread(action, host_project, "login", EMAIL)
        by_cookie = await ws_clients.open(relay, headers={"Cookie": f"member_session={login['cookie']}"})
        welcome = await by_cookie.expect("welcome")
        assert welcome["user"] == {"id": login["user_id"], "username": EMAIL}  # a UUID, as a string
        by_ticket, _ = await ws_clients.with_ticket(relay, login["ticket"])

        sent = await asyncio.to_thread(action, host_project, "notify", EMAIL, "Hello from the host")
        for client in (by_cookie, by_ticket):
            frame = await client.expect_event("Hello from the host")
            assert (frame["topic"], frame["event"]["id"]) == ("inbox", sent["event_id"])

        feed = await asyncio.to_thread(action, host_project, "feed", EMAIL)
        assert [(item["title"], item["read"]) for item in feed["results"]] == [("Hello from the host", False)]
        assert feed["unread_count"] == 1
        # The host has no LOGGING setting: the relay logs its connections at INFO all the same.
        assert f"INFO wsserver.relay: Connected {EMAIL}" in relay.output()
    finally:
        await asyncio.to_thread(relay.stop)
