"""
`python manage.py runwsserver [addr:port] [--noreload]`: the WebSocket relay, run like runserver.

It takes the same address forms as runserver (`8765`, `0.0.0.0:8765`, `[::1]:8765`), reloads on
code changes under DEBUG unless --noreload, and prints a banner once listening. When REDIS_URL
is unset in development it starts the bundled Redis (notifications.devredis) if nobody has.
"""

import os
import sys
import threading
from datetime import datetime

import django
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import autoreload

from notifications import devredis
from notifications.conf import app_settings
from wsserver import server
from wsserver.addresses import parse_address
from wsserver.workers import Supervisor

DEFAULT_ADDR = "127.0.0.1"
DEFAULT_PORT = app_settings.WSSERVER_PORT


class Command(BaseCommand):
    help = "Starts the WebSocket relay that pushes notification events to browsers."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", help=f"Optional port number, or ipaddr:port (default {DEFAULT_ADDR}:{DEFAULT_PORT}).")
        parser.add_argument("--noreload", action="store_false", dest="use_reloader", help="Do not use the auto-reloader.")
        parser.add_argument(
            "--workers", type=int, default=1, help="Relay processes sharing the port (SO_REUSEPORT); default 1."
        )

    def handle(self, *args, addrport=None, use_reloader=True, workers=1, **options):
        self.addr, self.port = parse_addrport(addrport)
        if workers < 1:
            raise CommandError(f"--workers must be at least 1, not {workers}.")
        self.workers = workers
        redis_process = None
        bundled_dir = app_settings.NOTIFICATIONS_BUNDLED_REDIS_DIR
        in_reloaded_child = os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"
        if bundled_dir and not in_reloaded_child and not devredis.is_running(bundled_dir):
            self.stdout.write(f"Starting the bundled Redis on {devredis.url(bundled_dir)}")
            redis_process = devredis.start(bundled_dir)
        try:
            if use_reloader and settings.DEBUG:
                autoreload.run_with_reloader(self.inner_run)
            else:
                self.inner_run()
        finally:
            if redis_process is not None:
                devredis.stop(redis_process)

    def inner_run(self):
        # Unapplied migrations, like every other problem of the relay's configuration, are
        # named at ERROR in the log and on /healthz while they last (wsserver.health).
        self.check(display_num_errors=True)
        try:
            if self.workers > 1:
                Supervisor(self.addr, self.port, self.workers).run(on_ready=lambda: self.print_banner(None))
            else:
                server.run_forever(self.addr, self.port, ready=self.print_banner)
        except (OSError, RuntimeError) as error:
            if isinstance(error, OSError):
                message = f"Could not listen on {self.addr}:{self.port}: {error.strerror or error}"
            else:
                message = f"The relay stopped: {error} ({error.__cause__!r})"
            if threading.current_thread() is threading.main_thread():
                raise CommandError(message) from error
            # Under the autoreloader this runs in a thread, which an exception would end alone,
            # leaving a process that serves nothing: end the process, as runserver does.
            self.stderr.write(f"Error: {message}")
            os._exit(1)

    def print_banner(self, _server):
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        self.stdout.write(
            f"{datetime.now().strftime('%B %d, %Y - %X')}\n"
            f"Django version {django.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting WebSocket relay at ws://{host}:{self.port}/ws/"
            f"{f' ({self.workers} workers)' if self.workers > 1 else ''}\n"
            f"Quit the server with {'CTRL-BREAK' if sys.platform == 'win32' else 'CONTROL-C'}."
        )
        self.stdout.flush()


def parse_addrport(addrport):
    """(addr, port) from runserver-style input; CommandError with the expected forms otherwise."""
    try:
        return parse_address(addrport, DEFAULT_ADDR, DEFAULT_PORT)
    except ValueError as error:
        raise CommandError(str(error)) from None
