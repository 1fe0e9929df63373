"""
The Python API host applications call: notify() and announce(), mark_read() and mark_all_read().

notify() and announce() store the event now and publish it when the surrounding transaction
commits (at once in autocommit mode), so a rolled-back transaction sends nothing. Marking read
tells the user's open sockets the same way (readstate.py).
"""

from .events import create_inbox_event, split_recipients
from .links import checked_url
from .models import Audience, Event, Kind
from .readstate import mark_all_read, mark_read

__all__ = ["notify", "announce", "mark_read", "mark_all_read"]


def notify(recipients, title, body="", url="", kind=Kind.NOTIFICATION, data=None, actor=None, target=None):
    """
    Send a notification to the inboxes of `recipients`: a user, a group, or a queryset or
    iterable of users and groups (a group reaches its members). `target` is an optional model
    instance the notification is about; `url` a path on this site or an http(s) URL of one of
    its hosts (ValueError otherwise, see links.py). Returns the stored Event.
    """
    users, group_ids = split_recipients(recipients)
    if users is None and not group_ids:
        raise ValueError("notify() needs at least one recipient.")
    event = Event(kind=kind, title=title, body=body, url=checked_url(url), data=data or {}, actor=actor)
    if target is not None:
        if target.pk is None:
            raise ValueError("notify(target=...) needs a saved model instance.")
        event.target_type = target._meta.label_lower
        event.target_id = str(target.pk)
        event.target_repr = str(target)[:200]
    return create_inbox_event(event, users=users, group_ids=group_ids)


def announce(title, body="", url="", audience=Audience.ALL, actor=None):
    """Send an announcement to every active user ("all") or to staff users only ("staff")."""
    if audience not in Audience.values:
        raise ValueError(f"announce() audience must be one of {Audience.values}, not {audience!r}.")
    event = Event(kind=Kind.ANNOUNCEMENT, title=title, body=body, url=checked_url(url), actor=actor)
    return create_inbox_event(event, audience=audience)
