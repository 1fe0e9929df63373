"""{% notifications_widget %}: what it renders, for whom, and the admin pages that carry it."""

import html
import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template
from django.test import RequestFactory

from ..factories import login, make_user

pytestmark = pytest.mark.django_db


def render(user, source="{% load notifications %}{% notifications_widget %}", **context):
    request = RequestFactory().get("/")
    request.user = user
    return Template(source).render(Context({"request": request, "user": user, **context}))


def data_attributes(markup):
    widget = re.search(r"<div class=\"ntf-widget\"[^>]*>", markup).group(0)
    return {name: html.unescape(value) for name, value in re.findall(r'data-([a-z-]+)="([^"]*)"', widget)}


def test_anonymous_visitors_get_nothing():
    assert render(AnonymousUser()).strip() == ""


def test_the_markup_carries_the_configuration_and_loads_static_files():
    user = make_user()
    markup = render(user)
    data = data_attributes(markup)
    assert data["ticket-url"] == "/notifications/ws-ticket/"
    assert data["list-url"] == "/notifications/api/notifications/"
    assert data["unread-url"] == "/notifications/api/unread-count/"
    assert data["read-url"] == "/notifications/api/notifications/{id}/read/"
    assert data["read-all-url"] == "/notifications/api/read-all/"
    assert data["user-id"] == str(user.pk)
    assert len(data["csrf-token"]) >= 32
    assert data["topics"] == "model:*"
    assert data["state"] == "connecting"
    assert "object-topic" not in data
    assert '<script type="module" src="/static/notifications/widget.js"></script>' in markup
    assert '<link rel="stylesheet" href="/static/notifications/widget.css">' in markup
    # Nothing inline: it works under a Content-Security-Policy without 'unsafe-inline'.
    assert not re.search(r"<script(?![^>]*\bsrc=)", markup)
    assert not re.search(r"\sstyle=|<style|\son[a-z]+=", markup)


def test_topics_can_be_chosen_and_the_inbox_is_always_followed():
    user = make_user()
    source = '{% load notifications %}{% notifications_widget topics="inbox" %}'
    assert data_attributes(render(user, source))["topics"] == ""
    source = '{% load notifications %}{% notifications_widget topics="model:auth.user, model:auth.group inbox" %}'
    assert data_attributes(render(user, source))["topics"] == "model:auth.user model:auth.group"
    source = '{% load notifications %}{% notifications_widget topics="\\"><script>" %}'
    assert "<script>\"" not in render(user, source)  # escaped like any template variable


def test_several_widgets_on_one_page_each_render():
    user = make_user()
    markup = render(user, "{% load notifications %}{% notifications_widget %}{% notifications_widget topics='inbox' %}")
    assert markup.count("data-ntf-widget") == 2
    assert " id=" not in markup  # ids are given by the script, unique per page


def test_every_admin_page_has_the_widget_and_a_change_form_follows_its_object():
    staff = login(make_user("staff", staff=True, perms=["auth.view_user"]))
    bob = make_user("bob")

    index = staff.client.get("/admin/").content.decode()
    assert 'id="site-name"' in index and "Django administration" in index  # Django's branding kept
    assert "Log out" in index and "View site" in index  # and its user links
    assert "object-topic" not in data_attributes(index)

    change_form = staff.client.get(f"/admin/auth/user/{bob.pk}/change/").content.decode()
    data = data_attributes(change_form)
    assert data["object-topic"] == f"object:auth.user:{bob.pk}"
    assert data["object-types"] == "auth.user"
    assert data["object-id"] == str(bob.pk)

    root = login(make_user("root", superuser=True))
    add_form = root.client.get("/admin/auth/user/add/").content.decode()
    assert "data-ntf-widget" in add_form and "object-topic" not in add_form  # no object yet

    login_page = login(make_user("plain")).client.get("/admin/login/").content.decode()
    assert "data-ntf-widget" not in login_page
