"""
Admin events in each reader's language, through a real relay and the HTTP feed.

A French admin (her request in French) renames a group in the admin. The row stores the site's
LANGUAGE_CODE (English) text; a German reader, by their preference or only by their browser
(the handshake's language cookie, or its Accept-Language), gets the event frame with a German
title and Django's German change message as body, and the feed gives them German too; a French
reader gets French; a reader in the site's language gets exactly the frame the publisher made.
A replay (resume) is in the reader's language, and a change of language in the preferences
applies to an open socket from the next event.
"""

import json

from django.conf import settings

from notifications.models import Event
from notifications.rendering import reader_language

from .aio import call, live_servers
from .factories import login, make_group, make_user

pytestmark = live_servers

TOPIC = "model:auth.group"
FEED = "/notifications/api/notifications/"
PREFERENCES = "/notifications/api/preferences/"


def reader(**preferences):
    """A staff user who may view groups, logged in; their preferences set through the API."""
    session = login(make_user("reader", staff=True, perms=["auth.view_group"]))
    if preferences:
        response = session.client.patch(PREFERENCES, json.dumps(preferences), content_type="application/json")
        assert response.status_code == 200, response.content
    return session


def rename_in_french(admin, group, name):
    """The admin's change form, posted by a browser speaking French."""
    response = admin.client.post(
        f"/admin/auth/group/{group.pk}/change/", {"name": name, "permissions": []}, HTTP_ACCEPT_LANGUAGE="fr"
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return Event.objects.filter(kind="admin.change", target_type="auth.group", target_id=str(group.pk)).latest("id")


def feed_titles(session, **headers):
    response = session.client.get(FEED, **headers)
    assert response.status_code == 200, response.content
    return [(item["title"], item["body"]) for item in response.json()["results"] if item["kind"] == "admin.change"]


def in_german(admin, name):
    return f"{admin} hat Gruppe „{name}“ geändert", "Name geändert."


def in_french(admin, name):
    return f"{admin} a modifié groupe « {name} »", "Modification de Name."


def in_english(admin, name):
    return f"{admin} changed group “{name}”", "Changed Name."


async def subscribed(ws_clients, relay, session, extra_cookie="", headers=None):
    cookie = f"{settings.SESSION_COOKIE_NAME}={session.cookie}" + (f"; {extra_cookie}" if extra_cookie else "")
    client = await ws_clients.open(relay, headers={"Cookie": cookie, **(headers or {})})
    welcome = await client.expect("welcome")
    await client.subscribe([TOPIC])
    return client, welcome


async def test_a_french_admins_change_reaches_each_reader_in_their_language(relay, ws_clients, stream):
    admin = await call(login, await call(make_user, "admin", superuser=True))
    group = await call(make_group)
    by_preference = await call(reader, language="de")
    by_cookie, by_accept_language, french, site, english = [await call(reader) for _ in range(5)]

    sockets = {
        "preference": (await subscribed(ws_clients, relay, by_preference))[0],
        "cookie": (await subscribed(ws_clients, relay, by_cookie, f"{settings.LANGUAGE_COOKIE_NAME}=de"))[0],
        "accept-language": (await subscribed(ws_clients, relay, by_accept_language, headers={"Accept-Language": "de-DE,de;q=0.9"}))[0],
        "french": (await subscribed(ws_clients, relay, french, headers={"Accept-Language": "fr"}))[0],
        "site": (await subscribed(ws_clients, relay, site))[0],
        "english": (await subscribed(ws_clients, relay, english, headers={"Accept-Language": "en"}))[0],
    }
    name = f"{group.name}-renamed"
    event = await call(rename_in_french, admin, group, name)
    username = admin.user.username

    # The row: the site's language (LANGUAGE_CODE), and what it was written from.
    assert settings.LANGUAGE_CODE.startswith("en")
    assert (event.title, event.body) == in_english(username, name)
    assert event.params["change_message"] == json.dumps([{"changed": {"fields": ["Name"]}}])

    for how in ("preference", "cookie", "accept-language"):
        frame = (await sockets[how].expect("event"))["event"]
        assert (frame["id"], frame["title"], frame["body"]) == (event.pk, *in_german(username, name)), how
    frame = (await sockets["french"].expect("event"))["event"]
    assert (frame["title"], frame["body"]) == in_french(username, name)

    # The site's language (by default, or asked for): byte for byte the event the publisher put in the stream.
    entries = await call(stream.redis.xrange, stream.key, min=f"({stream.start}", max="+")
    [published] = [fields["event"] for _entry, fields in entries if json.loads(fields["event"])["id"] == event.pk]
    assert (json.loads(published)["title"], json.loads(published)["body"]) == in_english(username, name)
    for how in ("site", "english"):
        raw = await sockets[how].connection.recv()
        assert published in raw, (how, raw, published)

    # The feed: the preference, else the request's language.
    assert (await call(feed_titles, by_preference))[0] == in_german(username, name)
    assert (await call(feed_titles, by_preference, HTTP_ACCEPT_LANGUAGE="fr"))[0] == in_german(username, name)
    assert (await call(feed_titles, french, HTTP_ACCEPT_LANGUAGE="fr"))[0] == in_french(username, name)
    by_cookie.client.cookies[settings.LANGUAGE_COOKIE_NAME] = "de"
    assert (await call(feed_titles, by_cookie))[0] == in_german(username, name)
    assert (await call(feed_titles, site))[0] == in_english(username, name)


async def test_a_replay_is_in_the_readers_language(relay, ws_clients):
    admin = await call(login, await call(make_user, "admin", superuser=True))
    group = await call(make_group)
    german = await call(reader, language="de")
    _before, welcome = await subscribed(ws_clients, relay, german)
    event = await call(rename_in_french, admin, group, f"{group.name}-replayed")

    late, _welcome = await subscribed(ws_clients, relay, german)
    await late.send({"type": "resume", "cursor": welcome["cursor"]})
    frame = (await late.expect("event"))["event"]
    assert (frame["id"], frame["title"], frame["body"]) == (event.pk, *in_german(admin.user.username, event.target_repr))


async def test_a_new_language_in_the_preferences_applies_to_an_open_socket_from_the_next_event(relay, ws_clients):
    admin = await call(login, await call(make_user, "admin", superuser=True))
    group = await call(make_group)
    session = await call(reader)
    client, _welcome = await subscribed(ws_clients, relay, session)

    first = await call(rename_in_french, admin, group, f"{group.name}-1")
    assert (await client.expect("event"))["event"]["title"] == in_english(admin.user.username, first.target_repr)[0]

    response = await call(session.client.patch, PREFERENCES, json.dumps({"language": "de"}), content_type="application/json")
    assert response.status_code == 200, response.content
    assert (await client.expect("preferences"))["preferences"]["language"] == "de"
    second = await call(rename_in_french, admin, group, f"{group.name}-2")
    frame = (await client.expect("event"))["event"]
    assert (frame["id"], frame["title"]) == (second.pk, in_german(admin.user.username, second.target_repr)[0])


def test_asking_for_the_sites_language_is_reading_like_everyone(settings):
    settings.LANGUAGE_CODE = "en-us"  # offered as "en" (LANGUAGES)
    assert reader_language("en") == reader_language("en-gb") == reader_language(None) == reader_language("xx") == "en"
    assert reader_language("de-at") == "de"
