"""Event links stay on the site: notify(), announce() and the announcement form refuse the rest."""

import pytest
from django.test import override_settings

from notifications import announce, notify
from notifications.links import checked_url
from notifications.models import Event

from .factories import make_user

ON_SITE = ["", "/", "/orders/5/", "/search?q=a#top", "https://www.example.com/x", "http://shop.example.com:8000/y"]
OFF_SITE = [
    "//evil.example/",
    "///evil.example/",
    "/\\evil.example/",
    "\\\\evil.example/",
    "https://evil.example/",
    "https://www.example.com.evil.example/",
    "https://www.example.com@evil.example/",
    "javascript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,x",
    "ftp://www.example.com/",
    "orders/5",
    "/\x00evil",
]


@override_settings(ALLOWED_HOSTS=["www.example.com", ".shop.example.com", "shop.example.com"])
@pytest.mark.parametrize("url", ON_SITE)
def test_links_into_the_site_are_kept(url):
    assert checked_url(url) == url.strip()


@override_settings(ALLOWED_HOSTS=["www.example.com", "*"])
@pytest.mark.parametrize("url", OFF_SITE)
def test_links_out_of_the_site_are_refused(url):
    with pytest.raises(ValueError, match="not a link into this site"):
        checked_url(url)


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=["www.example.com"])
def test_notify_and_announce_refuse_off_site_links_and_store_nothing():
    user = make_user()
    with pytest.raises(ValueError):
        notify(user, "phish", url="//evil.example/")
    with pytest.raises(ValueError):
        announce("phish", url="https://evil.example/")
    assert not Event.objects.exists()
    assert notify(user, "fine", url="https://www.example.com/orders/1/").url == "https://www.example.com/orders/1/"


@pytest.mark.django_db
def test_the_announcement_form_refuses_off_site_links():
    from django.test import Client

    client = Client()
    client.force_login(make_user("root", superuser=True))
    response = client.post(
        "/admin/notifications/event/announce/", {"title": "phish", "url": "//evil.example/", "audience": "all"}
    )
    assert response.status_code == 200
    assert "not a link into this site" in response.context["form"].errors["url"][0]
    assert not Event.objects.exists()
