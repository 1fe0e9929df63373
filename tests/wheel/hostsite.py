"""
A fresh site, made as its owner would make it: `django-admin startproject mysite` from the
virtualenv, the site's own apps and templates (site/: a custom user model, a `shop` app whose
`Order` is in the admin, a base template), then, verbatim, the blocks docs/integrate.md marks
for a site to paste:

    <!-- settings.py -->   appended to the end of mysite/settings.py
    <!-- urls.py -->       appended to the end of mysite/urls.py
    <!-- template -->      put into the site's base template

Nothing comes from project/ (the demo site). The site's processes run the virtualenv's python
in the site's directory, with clean_env() and the variables the settings block reads: REDIS_URL,
WSSERVER_PUBLIC_URL and WSSERVER_METRICS_ADDRESS.
"""

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..relay import BASE_DIR, ServerProcess, free_port, track
from .install import clean_env, run
from .web import Visitor

DOC = BASE_DIR / "docs" / "integrate.md"
OWN_FILES = Path(__file__).parent / "site"
PROJECT = "mysite"  # "site" is taken: Python's own module
PASSWORD = "wheel-site-password-5830"
START_TIMEOUT = 30.0  # seconds until a server answers, on a busy 2-core machine

# A marked block: the marker line, then a fenced code block in the language it must be in.
BLOCK = re.compile(r"^<!-- (?P<name>\S+) -->\n```(?P<language>\w+)\n(?P<code>.*?)\n```$", re.MULTILINE | re.DOTALL)
BLOCK_LANGUAGES = {"settings.py": "python", "urls.py": "python", "template": "django"}
TEMPLATE_SLOT = "<!-- docs/integrate.md's template block -->"  # in site/templates/base.html

OWN_SETTINGS = """
# The site's own: its apps, its user model, its templates, where a login lands.
INSTALLED_APPS += ["accounts", "shop"]
AUTH_USER_MODEL = "accounts.User"
TEMPLATES[0]["DIRS"] = [BASE_DIR / "templates"]
LOGIN_REDIRECT_URL = "/"
"""

OWN_URLS = """
# The site's own pages: a home page, and Django's login views for its customers.
from django.urls import include, path
from django.views.generic import TemplateView

urlpatterns += [
    path("", TemplateView.as_view(template_name="home.html")),
    path("accounts/", include("django.contrib.auth.urls")),
]
"""

# Run with `manage.py shell -c`: the site's people and an order, as its owner would add them.
SEED = f"""
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from shop.models import Order

User = get_user_model()
User.objects.create_superuser("admin", "admin@example.com", {PASSWORD!r})
clerk = User.objects.create_user("clerk", password={PASSWORD!r}, is_staff=True)
clerk.user_permissions.add(Permission.objects.get(content_type__app_label="shop", codename="view_order"))
customer = User.objects.create_user("customer", password={PASSWORD!r})
order = Order.objects.create(number="A-1001", customer=customer, total="42.00")
print(json.dumps({{"order": order.pk, "customer": customer.pk}}))
"""

# Run with `manage.py shell -c`: the site's code notifying people about their order, as
# integrate.md's section 7 shows; prints {username: the event's id}.
NOTIFY = """
import json
from django.contrib.auth import get_user_model
from notifications import notify
from shop.models import Order

order = Order.objects.get(number="A-1001")
sent = {{}}
for username, title in {messages!r}:
    sent[username] = notify(get_user_model().objects.get(username=username), title, url="/", target=order).pk
print(json.dumps(sent))
"""


def integrate_blocks():
    """{marker: code} of the blocks docs/integrate.md marks for a site to paste, each exactly once."""
    found = {}
    for block in BLOCK.finditer(DOC.read_text()):
        name = block["name"]
        assert name not in found, f"docs/integrate.md marks two {name} blocks"
        assert block["language"] == BLOCK_LANGUAGES.get(name), f"docs/integrate.md's {name} block is {block['language']}"
        found[name] = block["code"]
    assert found.keys() == BLOCK_LANGUAGES.keys(), f"docs/integrate.md marks {sorted(found)}, not {sorted(BLOCK_LANGUAGES)}"
    return found


def append(path, *texts):
    path.write_text(path.read_text() + "".join(f"\n{text}\n" for text in texts))


@dataclass
class Site:
    """The site in `directory`, run by the virtualenv's `python`, served on the given ports."""

    python: Path
    directory: Path
    env: dict
    web_port: int
    relay_port: int
    metrics_port: int  # WSSERVER_METRICS_ADDRESS: /metrics and the detailed /healthz
    seed: dict = field(default_factory=dict)  # what SEED printed: the order's and the customer's pks

    @property
    def relay_url(self):
        """Where the site sends browsers (WSSERVER_PUBLIC_URL): the relay it runs."""
        return self.env["WSSERVER_PUBLIC_URL"]

    def manage(self, *args):
        """`python manage.py <args>` in the site; its stdout."""
        return run([self.python, "manage.py", *args], self.directory, self.env)

    def shell(self, code):
        """Run `code` with `manage.py shell -c`; the JSON it printed last."""
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])

    def notify(self, messages):
        """notify() each (username, title) about the order, in the site; {username: event id}."""
        return self.shell(NOTIFY.format(messages=list(messages)))

    def serve(self, command, port, ready_path):
        """
        Start `manage.py <command> 127.0.0.1:<port> --noreload`, and wait (bounded) until
        GET <ready_path> answers 200: it serves, not merely listens. Its stderr is its log.
        """
        log_path = self.directory / f"{command}.log"
        with open(self.directory / f"{command}.out", "ab") as out, open(log_path, "ab") as log:
            process = subprocess.Popen(
                [str(self.python), "manage.py", command, f"127.0.0.1:{port}", "--noreload"],
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=log,
            )
        server = ServerProcess(port, process, log_path, name=f"the wheel site's {command}")
        track(server)  # conftest.py shows its log when a test fails
        try:
            wait_until_serving(server, ready_path)
        except BaseException:
            server.stop()
            raise
        return server


def wait_until_serving(server, path):
    """Bounded: a server that exits, or does not answer 200 in time, fails the test with its log."""
    visitor = Visitor(f"http://127.0.0.1:{server.port}")
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert server.process.poll() is None, f"{server.name} exited with {server.process.returncode}:\n{server.output()}"
        try:
            if visitor.get(path).status == 200:  # the relay answers 503 until it can serve
                return
        except OSError:  # not listening yet
            pass
        assert time.monotonic() < deadline, f"{path} did not answer 200 within {START_TIMEOUT} s:\n{server.output()}"
        time.sleep(0.1)


def create(python, directory, redis_url):
    """Make the site in `directory` with the virtualenv's `python`, migrated and seeded."""
    directory.mkdir()
    run([python.parent / "django-admin", "startproject", PROJECT, directory], directory)
    for each in OWN_FILES.iterdir():
        shutil.copytree(each, directory / each.name, ignore=shutil.ignore_patterns("__pycache__"))
    blocks = integrate_blocks()
    append(directory / PROJECT / "settings.py", OWN_SETTINGS, blocks["settings.py"])
    append(directory / PROJECT / "urls.py", OWN_URLS, blocks["urls.py"])
    base = directory / "templates" / "base.html"
    base.write_text(base.read_text().replace(TEMPLATE_SLOT, blocks["template"]))
    web_port, relay_port, metrics_port = free_port(), free_port(), free_port()
    env = clean_env(
        REDIS_URL=redis_url,
        WSSERVER_PUBLIC_URL=f"ws://127.0.0.1:{relay_port}/ws/",
        WSSERVER_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}",
    )
    site = Site(python, directory, env, web_port, relay_port, metrics_port)
    site.manage("makemigrations", "accounts", "shop")
    site.manage("migrate")
    site.seed = site.shell(SEED)
    return site
