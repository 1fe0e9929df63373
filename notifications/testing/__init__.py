"""
Test helpers for sites: the events a block of code published, and assertions on them.

    from notifications.testing import captured_events

    with captured_events() as published:
        ship(order)
    published.assert_published(title="Your order shipped", to=order.customer)

Like Django's `mail.outbox`, a capture records what was sent: each event whose transaction
committed, as clients receive it (`payload`), with the routes it travels under (to whom, on
which topics), and it is published as it would be. It works in any test. In one wrapped in a
transaction that never commits (Django's TestCase, pytest-django's `db`), the code's own
transactions end but nothing commits: whenever the capture is looked at (and as the block
ends), the events whose publication waits for a commit are recorded as if it had come, as long
as no transaction but the test's own is open; they are not sent to Redis (their rows will be
rolled back, and their ids used again by later tests), and the site's other on-commit
callbacks do not run.

With pytest, the plugin `notifications.testing.pytest` gives the `published_events` fixture, and a
real relay with a client that connects as a user (docs/testing.md).
"""

import json
import threading
from contextlib import contextmanager
from functools import partial
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections

__all__ = ["EventCapture", "PublishedEvent", "captured_events"]

_captures = []  # the captures listening now
_lock = threading.Lock()


@dataclass(frozen=True)
class PublishedEvent:
    """One event as it was published: the stored Event, what clients receive, its routes."""

    event: object  # the notifications.models.Event row
    payload: dict  # the event as `event` frames and the HTTP API carry it
    routes: tuple  # the routing keys it travels under (notifications.topics)

    def __getattr__(self, name):
        """The payload's fields as attributes: id, kind, title, body, url, actor, target, created_at, data."""
        try:
            return self.__dict__["payload"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def topics(self):
        """The topics it is shown under: `inbox` for an addressed event, else model and object topics."""
        from notifications.topics import topic_of_route

        return {topic_of_route(route) for route in self.routes}

    def addressed_to(self, recipient):
        """Whether it reaches the inbox of this user (directly, through a group, as an announcement) or this group."""
        from django.contrib.auth.models import Group

        from notifications.authorization import inbox_routes
        from notifications.topics import group_route

        if isinstance(recipient, Group):
            return group_route(recipient.pk) in self.routes
        return bool(set(self.routes) & set(inbox_routes(recipient)))

    def __str__(self):
        return f"{self.kind} {self.title!r} (event {self.id}) on {', '.join(self.routes)}"


class EventCapture:
    """The events published while capturing, oldest first (a list: len(), indexing, iteration)."""

    def __init__(self, using=DEFAULT_DB_ALIAS):
        self._recorded = []
        self._using = using
        self._callbacks_seen = len(connections[using].run_on_commit)

    @property
    def events(self):
        self.commit_pending()
        return list(self._recorded)

    def __len__(self):
        return len(self.events)

    def __iter__(self):
        return iter(self.events)

    def __getitem__(self, index):
        return self.events[index]

    def commit_pending(self):
        """
        Record the publications waiting for a commit since the capture began, once, if only
        test-case transactions are open (see above): what a commit of the code's work would publish.
        """
        from notifications import outbox

        connection = connections[self._using]
        if not all(getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
            return
        self._callbacks_seen = min(self._callbacks_seen, len(connection.run_on_commit))  # rolled-back savepoints
        pending = connection.run_on_commit[self._callbacks_seen :]
        self._callbacks_seen = len(connection.run_on_commit)
        for _savepoints, callback, _robust in pending:
            if isinstance(callback, partial) and callback.func is outbox.publish_committed:
                self._record(outbox.not_withdrawn(*callback.args))

    def filter(self, *, title=None, kind=None, to=None, topic=None, actor=None, target=None, **fields):
        """
        The events matching every criterion given: `title`, `kind`, `body`, `url` and other payload
        fields by equality, `data` as a subset, `to` a user or group whose inbox it reaches,
        `topic` one it is shown under, `actor` the user who acted, `target` the model instance it is about.
        """
        matches = []
        for published in self.events:
            payload = published.payload
            if title is not None and payload["title"] != title or kind is not None and payload["kind"] != kind:
                continue
            if topic is not None and topic not in published.topics:
                continue
            if actor is not None and (payload["actor"] or {}).get("id") != actor.pk:
                continue
            about = payload["target"] or {}
            if target is not None and (about.get("type"), about.get("id")) != (target._meta.label_lower, str(target.pk)):
                continue
            if not _fields_match(payload, fields) or to is not None and not published.addressed_to(to):
                continue
            matches.append(published)
        return matches

    def assert_published(self, count=None, **criteria):
        """
        The first event matching `criteria` (see filter()); AssertionError listing what was
        published when none does, or when `count` is given and that many do not.
        """
        matches = self.filter(**criteria)
        if not matches or count is not None and len(matches) != count:
            wanted = "an event" if count is None else f"{count} event(s)"
            raise AssertionError(f"Expected {wanted} matching {_describe(criteria)}, found {len(matches)}.\n{self._listing()}")
        return matches[0]

    def assert_not_published(self, **criteria):
        """No event matches `criteria` (with none given: nothing was published at all)."""
        matches = self.filter(**criteria)
        if matches:
            raise AssertionError(f"Expected no event matching {_describe(criteria)}, found {len(matches)}.\n{self._listing()}")

    def _listing(self):
        if not self._recorded:
            return "Nothing was published."
        return "Published:\n" + "\n".join(f"  {published}" for published in self._recorded)

    def _record(self, messages):
        for message in messages:
            self._recorded.append(PublishedEvent(message.event, json.loads(message.payload), tuple(json.loads(message.routes))))


def _fields_match(payload, fields):
    for name, wanted in fields.items():
        if name not in payload:
            raise TypeError(f"Unknown criterion {name!r}: events have {', '.join(payload)}.")
        value = payload[name]
        if name == "data" and isinstance(wanted, dict):
            if any(key not in value or value[key] != item for key, item in wanted.items()):
                return False
        elif value != wanted:
            return False
    return True


def _describe(criteria):
    return ", ".join(f"{name}={value!r}" for name, value in criteria.items()) or "anything"


@contextmanager
def _listening(capture):
    """
    Record what outbox.publish_in_order publishes while any capture listens: every committed
    event passes through it (notify(), announce(), the admin, tracked models).
    """
    from notifications import outbox

    with _lock:
        if not _captures:
            original = outbox.publish_in_order

            def recording(messages):
                with _lock:
                    listening = list(_captures)
                for each in listening:
                    each._record(messages)
                return original(messages)

            recording.original = original
            outbox.publish_in_order = recording
        _captures.append(capture)
    try:
        yield capture
    finally:
        with _lock:
            _captures.remove(capture)
            if not _captures:
                outbox.publish_in_order = outbox.publish_in_order.original


@contextmanager
def captured_events(using=DEFAULT_DB_ALIAS):
    """Capture the events published inside the block (see above); yields an EventCapture."""
    capture = EventCapture(using)
    with _listening(capture):
        yield capture
        capture.commit_pending()
