"""
Users, groups, permissions and logged-in sessions for tests (synchronous ORM code: async tests
call these through asgiref's sync_to_async).
"""

import itertools
import json
import uuid
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

_counter = itertools.count(1)
_run = uuid.uuid4().hex[:6]


def unique(prefix):
    """A name no other test uses: prefix-<run>-<n>."""
    return f"{prefix}-{_run}-{next(_counter)}"


def permissions(*names):
    """Permission objects from "app_label.codename" names."""
    found = []
    for name in names:
        app_label, codename = name.split(".")
        found.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return found


def make_user(prefix="user", *, staff=False, superuser=False, perms=(), groups=(), active=True, joined=None):
    extra = {"date_joined": joined} if joined is not None else {}
    user = get_user_model().objects.create_user(
        username=unique(prefix), password=None, is_staff=staff or superuser, is_superuser=superuser, is_active=active, **extra
    )
    if perms:
        user.user_permissions.set(permissions(*perms))
    if groups:
        user.groups.set(groups)
    return user


def make_group(prefix="group", perms=(), members=()):
    group = Group.objects.create(name=unique(prefix))
    if perms:
        group.permissions.set(permissions(*perms))
    if members:
        group.user_set.set(members)
    return group


@dataclass
class Login:
    """A user logged in through Django's test Client, and the session cookie it holds."""

    user: object
    client: Client

    @property
    def cookie(self):
        return self.client.cookies[settings.SESSION_COOKIE_NAME].value

    @property
    def session_key(self):
        return self.client.session.session_key


def login(user):
    client = Client()
    client.force_login(user)
    return Login(user, client)


def fetch_ticket(login):
    """A WebSocket ticket from GET /notifications/ws-ticket/, as the page's script gets it."""
    response = login.client.get("/notifications/ws-ticket/")
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    return body["ticket"]


def logout(login):
    login.client.logout()


def session_store(session_key):
    """The session behind a key, through SESSION_ENGINE, as Django and the relay load it."""
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)
