"""
`python manage.py runstack`: the whole system for development, in one terminal.

Starts the bundled Redis when REDIS_URL is unset, applies migrations, creates the demo users,
then runs Django (runserver) and the relay (runwsserver) until Ctrl-C or SIGTERM, which stop
everything it started. What a real site configures and the demo cannot know is given development
values: the site's address (the links of digest emails, printed on the console) and, unless set,
a VAPID key pair for Web Push, made once and kept in .demo-vapid.json beside manage.py.
"""

import json
import os
import signal
import subprocess
import sys
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand

from django.conf import settings

from notifications import devredis
from notifications.conf import app_settings
from notifications.webpush import vapid

DEMO_VAPID_FILE = ".demo-vapid.json"


def demo_settings(http):
    """Environment for the demo's servers: the site's address, and a development VAPID pair unless one is set."""
    values = {"NOTIFICATIONS_SITE_URL": os.environ.get("NOTIFICATIONS_SITE_URL") or f"http://{http}"}
    if not app_settings.NOTIFICATIONS_VAPID_PUBLIC_KEY and not app_settings.NOTIFICATIONS_VAPID_PRIVATE_KEY:
        path = settings.BASE_DIR / DEMO_VAPID_FILE
        if not path.exists():
            private, public = vapid.generate()
            path.write_text(json.dumps({"private": private, "public": public}))
            path.chmod(0o600)
        keys = json.loads(path.read_text())
        values.update(
            NOTIFICATIONS_VAPID_PUBLIC_KEY=keys["public"],
            NOTIFICATIONS_VAPID_PRIVATE_KEY=keys["private"],
            NOTIFICATIONS_VAPID_SUBJECT=app_settings.NOTIFICATIONS_VAPID_SUBJECT or "mailto:demo@example.com",
        )
    return values


class Command(BaseCommand):
    help = "Runs Redis (bundled if needed), migrations, demo users, Django and the WebSocket relay."

    def add_arguments(self, parser):
        parser.add_argument("--http", default="127.0.0.1:8000", help="Django's address (default 127.0.0.1:8000).")
        parser.add_argument("--ws", default="127.0.0.1:8765", help="The relay's address (default 127.0.0.1:8765).")
        parser.add_argument("--noreload", action="store_true", help="Do not reload on code changes.")

    def handle(self, *args, http, ws, noreload, **options):
        redis_process = None
        bundled_dir = app_settings.NOTIFICATIONS_BUNDLED_REDIS_DIR
        if bundled_dir and not devredis.is_running(bundled_dir):
            redis_process = devredis.start(bundled_dir)
            self.stdout.write(f"Started the bundled Redis on {devredis.url(bundled_dir)}")
        children = []
        try:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("seeddemo", stdout=self.stdout)
            env = dict(os.environ, PYTHONUNBUFFERED="1", **demo_settings(http))
            env.setdefault("WSSERVER_PUBLIC_URL", "" if ws.endswith(":8765") else f"ws://{ws}/ws/")
            reload_flag = ["--noreload"] if noreload else []
            manage = [sys.executable, sys.argv[0]]
            children = [
                subprocess.Popen([*manage, "runserver", http, *reload_flag], env=env),
                subprocess.Popen([*manage, "runwsserver", ws, *reload_flag], env=env),
            ]
            self.stdout.write(self.style.SUCCESS(f"\nOpen http://{http}/ and log in; the relay is at ws://{ws}/ws/. Ctrl-C stops everything.\n"))
            self._wait(children)
        finally:
            self._stop(children)
            if redis_process is not None:
                devredis.stop(redis_process)
                self.stdout.write("Stopped the bundled Redis.")

    def _wait(self, children):
        """Until SIGINT or SIGTERM, or until a child exits (the stack is broken: stop it all)."""
        stopping = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.append(True))
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
        for child in children:
            if child.poll() not in (None, 0, -signal.SIGINT, -signal.SIGTERM):
                self.stderr.write(f"{child.args[2]} exited with code {child.returncode}; stopping.")

    def _stop(self, children):
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
