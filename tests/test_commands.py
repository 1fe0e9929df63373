"""Management commands: runwsserver's address parsing and errors, seeddemo."""

import socket
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from wsserver.management.commands.runwsserver import (
    DEFAULT_ADDR,
    DEFAULT_PORT,
    parse_addrport,
)


@pytest.mark.parametrize(
    ("addrport", "expected"),
    [
        (None, (DEFAULT_ADDR, DEFAULT_PORT)),
        ("", ("127.0.0.1", 8765)),
        ("8765", ("127.0.0.1", 8765)),
        ("9000", ("127.0.0.1", 9000)),
        ("0.0.0.0:9000", ("0.0.0.0", 9000)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::]:65535", ("::", 65535)),
        ("localhost:8765", ("localhost", 8765)),
    ],
)
def test_parse_addrport(addrport, expected):
    assert parse_addrport(addrport) == expected


@pytest.mark.parametrize(
    "addrport",
    ["junk", "abc:def", "0", "65536", "99999", "127.0.0.1:", ":8000", "::1:9000", "[::1]", "1.2.3.4:-1", "8765 ", "http://x:80"],
)
def test_parse_addrport_rejects_junk(addrport):
    with pytest.raises(CommandError):
        parse_addrport(addrport)


def test_runwsserver_rejects_a_bad_address_before_starting():
    with pytest.raises(CommandError, match="not a port number"):
        call_command("runwsserver", "not-an-address", "--noreload")


@pytest.mark.django_db  # runwsserver checks for unapplied migrations, as runserver does
def test_runwsserver_reports_a_busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"Could not listen on 127.0.0.1:{port}"):
            call_command("runwsserver", f"127.0.0.1:{port}", "--noreload", stdout=StringIO())


@pytest.mark.django_db
def test_seeddemo_refuses_to_run_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="only with DEBUG"):
        call_command("seeddemo", stdout=StringIO())
    assert not get_user_model().objects.filter(username="admin").exists()


@pytest.mark.django_db
def test_seeddemo_creates_the_demo_users_idempotently(settings):
    settings.DEBUG = True
    User = get_user_model()
    for _ in range(2):
        output = StringIO()
        call_command("seeddemo", stdout=output)
        assert "alice" in output.getvalue()
        users = {user.username: user for user in User.objects.filter(username__in=["admin", "alice", "bob"])}
        assert f"Presence: open /admin/auth/user/{users['bob'].pk}/change/ as admin in one browser and as alice" in output.getvalue()
        assert sorted(users) == ["admin", "alice", "bob"]
        assert User.objects.count() == 3
        assert Group.objects.filter(name="Support").count() == 1
        admin, alice, bob = users["admin"], users["alice"], users["bob"]
        assert (admin.is_superuser, admin.is_staff) == (True, True)
        assert (alice.is_superuser, alice.is_staff) == (False, True)
        assert (bob.is_superuser, bob.is_staff) == (False, False)
        assert [g.name for g in alice.groups.all()] == ["Support"]
        assert not bob.groups.exists()
        assert alice.has_perm("auth.view_user") and alice.has_perm("auth.view_group")
        assert not bob.has_perm("auth.view_user")
        for user, password in [(admin, "admin-demo-pw"), (alice, "alice-demo-pw"), (bob, "bob-demo-pw")]:
            assert user.check_password(password)


@pytest.mark.django_db
def test_seeddemo_resets_changed_demo_users(settings):
    settings.DEBUG = True
    call_command("seeddemo", stdout=StringIO())
    User = get_user_model()
    bob = User.objects.get(username="bob")
    bob.is_superuser = bob.is_active = False
    bob.set_password("changed")
    bob.save()
    bob.groups.set(Group.objects.filter(name="Support"))
    call_command("seeddemo", stdout=StringIO())
    bob = User.objects.get(username="bob")
    assert bob.is_active and not bob.is_superuser
    assert bob.check_password("bob-demo-pw")
    assert not bob.groups.exists()
