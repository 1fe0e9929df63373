"""
Admin and model events in the reader's language.

An admin or model event is stored as what happened, not as a sentence: its kind, its actor, its
target (model label and str()), and for an admin change the log's change message as Django
keeps it (JSON, `params`). Its title and body are written when someone reads it (the feed, an
event frame, a toast, an email) in that reader's language, with the model's verbose name and
Django's own change messages ("Changed First name.") in that language too. A French admin's change
is a German reader's "root hat Benutzer „bob“ geändert".

The stored title and body are the same sentences in the site's LANGUAGE_CODE, for whatever reads
the rows directly. Inbox notifications (notify(), announce()) are the site's own words and are
shown as given.
"""

import json

from django.apps import apps
from django.conf import settings
from django.http import HttpRequest
from django.http.cookie import parse_cookie
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from .models import Kind

RENDERED_KINDS = frozenset(
    [Kind.ADMIN_ADDITION, Kind.ADMIN_CHANGE, Kind.ADMIN_DELETION, Kind.MODEL_CREATED, Kind.MODEL_UPDATED, Kind.MODEL_DELETED]
)


def _title(kind, values):
    # Each sentence whole, so that translators can order it as their language wants.
    if kind == Kind.ADMIN_ADDITION:
        return _("%(actor)s added %(model)s “%(object)s”") % values
    if kind == Kind.ADMIN_CHANGE:
        return _("%(actor)s changed %(model)s “%(object)s”") % values
    if kind == Kind.ADMIN_DELETION:
        return _("%(actor)s deleted %(model)s “%(object)s”") % values
    if kind == Kind.MODEL_CREATED:
        return pgettext("a tracked model's event", "%(Model)s “%(object)s” was created") % values
    if kind == Kind.MODEL_UPDATED:
        return pgettext("a tracked model's event", "%(Model)s “%(object)s” was updated") % values
    return pgettext("a tracked model's event", "%(Model)s “%(object)s” was deleted") % values


def verbose_name(label):
    """The model's verbose name in the active language; its label's model name if the model is gone."""
    try:
        return str(apps.get_model(label)._meta.verbose_name)
    except (LookupError, ValueError):
        return label.partition(".")[2] or label


def title_and_body(kind, actor, target_type, target_repr, params):
    """(title, body) of an admin or model event in the active language."""
    model = verbose_name(target_type)
    values = {"actor": actor or _("someone"), "model": model, "Model": model[:1].upper() + model[1:], "object": target_repr}
    body = ""
    if kind != Kind.ADMIN_ADDITION and params.get("change_message"):
        from django.contrib.admin.models import LogEntry  # admin events exist only where the admin is installed

        body = LogEntry(change_message=params["change_message"]).get_change_message()
    return _title(kind, values), body


def in_site_language(kind, actor, target_type, target_repr, params):
    """(title, body) in LANGUAGE_CODE: what the row stores, whatever language the request that made it spoke."""
    with translation.override(settings.LANGUAGE_CODE):
        return title_and_body(kind, actor, target_type, target_repr, params)


def reader_language(language):
    """A language code the site offers for `language` (a preference, a cookie), else LANGUAGE_CODE."""
    if language:
        try:
            return translation.get_supported_language_variant(language)
        except LookupError:
            pass
    return settings.LANGUAGE_CODE


def browser_language(cookie_header, accept_language):
    """
    The language Django's LocaleMiddleware would give a request with these headers (its language
    cookie, else Accept-Language, else LANGUAGE_CODE): a socket's language when its user chose none.
    """
    request = HttpRequest()
    request.COOKIES = parse_cookie(cookie_header or "")
    if accept_language:
        request.META["HTTP_ACCEPT_LANGUAGE"] = accept_language
    return translation.get_language_from_request(request)


def is_rendered(payload):
    """Whether an event payload's title and body are written for each reader (an admin or model event)."""
    return payload.get("kind") in RENDERED_KINDS and payload.get("params") is not None


def rendered_json(payload, language):
    """An event payload (parsed) as JSON text, with its title and body in `language`: what the relay sends."""
    return json.dumps(rendered(payload, language), separators=(",", ":"), ensure_ascii=False)


def rendered(payload, language):
    """
    The event payload (publishing.event_payload's dict) with its title and body in `language`,
    when it is an admin or model event; the payload itself otherwise.
    """
    if not is_rendered(payload):
        return payload
    target = payload.get("target") or {}
    actor = (payload.get("actor") or {}).get("username") or payload["params"].get("actor")
    with translation.override(language):
        title, body = title_and_body(payload["kind"], actor, target.get("type", ""), target.get("repr", ""), payload["params"])
    return {**payload, "title": title, "body": body}
