"""
`{% load notifications %}{% notifications_widget %}`: the notification bell of the logged-in user.

The tag renders markup only (notifications/widget.html): a bell with an unread badge, the
dropdown, the connection state, and data-* attributes that configure the static ES module
notifications/widget.js, the widget's words in the request's language among them
(`data-catalog`, notifications/widget_strings.py). Nothing is inline (no script, no style attribute), so the widget works
under a Content-Security-Policy without 'unsafe-inline'. Anonymous visitors get nothing.

    {% notifications_widget %}                          inbox + every model the user may follow
    {% notifications_widget topics="inbox" %}           the inbox only
    {% notifications_widget topics="model:shop.order" %}

On a Django admin change form (the context has `change`, `original` and `opts`), the widget
also follows that object's topic, shows a banner when someone else changes or deletes it, and
says who else has it open (presence-view.js).
"""

from django import template
from django.middleware.csrf import get_token
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext

from .. import widget_strings
from ..topics import INBOX, object_topic
from ..webpush import vapid

register = template.Library()

DEFAULT_TOPICS = "model:*"
# Reversed in place of an event id, then replaced by "{id}" for the script to fill in.
_ID_PLACEHOLDER = 9081726354


def _topics(topics):
    names = str(topics or "").replace(",", " ").split()
    return [name for name in dict.fromkeys(names) if name != INBOX]  # the inbox is always followed


def _csrf_token(context, request):
    token = context.get("csrf_token")
    if token and str(token) != "NOTPROVIDED":
        return str(token)
    return get_token(request) if request is not None else ""


def _edited_object(context):
    """(topic, target types, pk) of the object an admin change form shows, or None."""
    original, opts = context.get("original"), context.get("opts")
    if not context.get("change") or original is None or opts is None or getattr(original, "pk", None) is None:
        return None
    concrete = opts.concrete_model._meta.label_lower
    types = list(dict.fromkeys([opts.label_lower, concrete]))  # a proxy's events may name either
    return object_topic(opts.label_lower, original.pk), types, str(original.pk)


@register.inclusion_tag("notifications/widget.html", takes_context=True)
def notifications_widget(context, topics=DEFAULT_TOPICS):
    request = context.get("request")
    user = context.get("user") or getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return {"show": False}
    read_url = reverse("notifications:api-read", kwargs={"event_id": _ID_PLACEHOLDER})
    config = {
        "ticket-url": reverse("notifications:ws-ticket"),
        "list-url": reverse("notifications:api-notifications"),
        "unread-url": reverse("notifications:api-unread-count"),
        "read-url": read_url.replace(str(_ID_PLACEHOLDER), "{id}"),
        "read-all-url": reverse("notifications:api-read-all"),
        "group-url": reverse("notifications:api-group", kwargs={"group_id": _ID_PLACEHOLDER}).replace(str(_ID_PLACEHOLDER), "{id}"),
        "preferences-url": reverse("notifications:api-preferences"),
        "user-id": str(user.pk),
        "csrf-token": _csrf_token(context, request),
        "topics": " ".join(_topics(topics)),
        "push-subscriptions-url": reverse("notifications:api-push-subscriptions"),
        "push-held-url": reverse("notifications:api-push-subscription-held"),
        # The service worker's title for a push it cannot read, in the user's language.
        "service-worker-url": static("notifications/sw.js") + "?" + urlencode({"title": gettext("New notification")}),
        "catalog": widget_strings.catalog_json(),
    }
    if vapid.enabled():
        config["vapid-public-key"] = vapid.public_key()
    edited = _edited_object(context)
    if edited is not None:
        topic, types, pk = edited
        config.update({"object-topic": topic, "object-types": " ".join(types), "object-id": pk})
    return {"show": True, "config": sorted(config.items())}
