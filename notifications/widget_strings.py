"""
The widget's words, translated with Django's machinery and handed to the browser as JSON.

The widget's modules (static/notifications/*.js) say `_("Open")`; the messages are listed here,
so that `makemessages` finds them in the app's `django` domain and translators see them next to
the app's other strings. `{% notifications_widget %}` puts catalog() (in the request's language)
in the widget's `data-catalog` attribute, which static/notifications/i18n.js reads: no build
step, no script inline, nothing evaluated.

Plural messages are sent as all their forms, with the catalog's plural rule for the language (the
C expression of its Plural-Forms header), which i18n.js reads with a small parser.

Each language's catalog is made once per process (catalog_json), as Django loads each
language's translations once: every page render of the widget then costs no gettext call.
"""

import gettext as gettext_module
import json
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import translation
from django.utils.translation import gettext, gettext_noop, ngettext_lazy

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
ENGLISH_RULE = "(n != 1)"

MESSAGES = [
    # widget.js
    gettext_noop("New notifications"),
    gettext_noop("Open"),
    gettext_noop("Dismiss notification"),
    gettext_noop("%(actor)s changed this object."),
    gettext_noop("%(actor)s deleted this object."),
    gettext_noop("Reload"),
    gettext_noop("Back to the list"),
    gettext_noop("Live notifications: %(state)s"),
    gettext_noop("connecting"),
    gettext_noop("live"),
    gettext_noop("reconnecting"),
    gettext_noop("polling"),
    gettext_noop("offline"),
    gettext_noop("Someone"),
    gettext_noop("New notification: %(title)s. %(body)s"),
    gettext_noop("New notification: %(title)s"),
    gettext_noop("Could not load notifications."),
    gettext_noop("Could not load older notifications."),
    gettext_noop("Could not mark the notification as read."),
    gettext_noop("Could not mark the notifications as read."),
    gettext_noop("Notifications"),
    gettext_noop("Unread: "),
    gettext_noop("Mark as read"),
    gettext_noop("muted"),
    gettext_noop("Desktop notifications: blocked by the browser"),
    gettext_noop("Desktop notifications: on"),
    gettext_noop("Desktop notifications: off"),
    gettext_noop("Muted %(name)s. Preferences can undo it."),
    gettext_noop("Could not mute %(name)s (%(error)s)."),
    gettext_noop("Notification preferences"),
    # preferences-panel.js, preference-fields.js
    gettext_noop("everything about %(model)s"),
    gettext_noop("Live toasts on this site"),
    gettext_noop("Push notifications to my devices"),
    gettext_noop("Email digest"),
    gettext_noop("Language"),
    gettext_noop("Muted kinds"),
    gettext_noop("No kind is muted."),
    gettext_noop("Muted topics"),
    gettext_noop("No topic is muted."),
    gettext_noop("Back"),
    gettext_noop(" to notifications"),
    gettext_noop("How to tell me"),
    gettext_noop("Save"),
    gettext_noop("Loading…"),
    gettext_noop("Could not load your preferences (%(error)s)."),
    gettext_noop("Site default (%(value)s)"),
    gettext_noop("Site default"),
    gettext_noop("%(name)s will be unmuted when you save."),
    gettext_noop("Nothing to save: no changes."),
    gettext_noop("Saving…"),
    gettext_noop("Preferences saved."),
    gettext_noop("Not saved (%(error)s); your changes are still here: try again."),
    gettext_noop("Not saved. %(problems)s"),
    gettext_noop("Remove"),
    # mute-menu.js
    gettext_noop("Mute all “%(kind)s” notifications"),
    gettext_noop("Mute notifications about %(model)s “%(object)s”"),
    gettext_noop("Mute notifications about %(model)s %(id)s"),
    gettext_noop("Mute notifications about every %(model)s"),
    gettext_noop("Mute options: %(title)s"),
    gettext_noop("Mute options"),
    # bursts.js
    gettext_noop("Notifications of this group"),
    gettext_noop("Could not load the notifications of this group."),
    gettext_noop("More"),
    gettext_noop("Could not mark the notifications of this group as read."),
    gettext_noop("%(title)s (+%(more)s)"),
    gettext_noop("Updated notification: %(title)s"),
    # presence-view.js
    gettext_noop("%(name)s is also viewing this"),
    gettext_noop("%(names)s are viewing this"),
    gettext_noop("%(name)s is editing"),
    gettext_noop("%(names)s are editing"),
    gettext_noop("%(first)s and %(last)s"),
    gettext_noop(", "),
    gettext_noop("; "),
    # device-control.js, push.js, http.js
    gettext_noop("This device"),
    gettext_noop("Notify me on this device"),
    gettext_noop("Stop notifying this device"),
    gettext_noop("This browser cannot receive push notifications here."),
    gettext_noop("This device gets push notifications."),
    gettext_noop("This device gets no push notifications."),
    gettext_noop("Stopping…"),
    gettext_noop("Subscribing this device…"),
    gettext_noop("The service worker could not be installed."),
    gettext_noop(
        "Notifications are not allowed for this site: allow them in the browser's site settings, then try again."
    ),
    gettext_noop("The site's VAPID public key is not base64url text."),
    gettext_noop("The browser could not subscribe this device: %(reason)s"),
    gettext_noop("The server did not take this device's subscription: %(reason)s"),
    gettext_noop("The server could not forget this device: %(reason)s"),
    gettext_noop("No answer from the server."),
]

# The number is looked up under "n", which no message uses: the forms keep their %(count)s.
PLURALS = [
    ngettext_lazy("Notifications, %(count)s unread", "Notifications, %(count)s unread", "n"),
    ngettext_lazy("%(count)s other", "%(count)s others", "n"),
]


class _Placeholders(dict):
    """A mapping that leaves every %(name)s it does not hold as it is."""

    def __missing__(self, name):
        return f"%({name})s"


@lru_cache(maxsize=None)
def plural_rule(language):
    """
    The C expression of the plural rule for `language`: the Plural-Forms of its catalog in the
    site's LOCALE_PATHS (which Django prefers) or else the app's; English's without one.
    """
    for directory in [*settings.LOCALE_PATHS, LOCALE_DIR]:
        found = gettext_module.translation("django", directory, [translation.to_locale(language)], fallback=True)
        forms = found.info().get("plural-forms", "")
        rule = next((part.strip()[len("plural=") :] for part in forms.split(";") if part.strip().startswith("plural=")), "")
        if rule:
            return rule
    return ENGLISH_RULE


@lru_cache(maxsize=None)
def _samples(rule):
    """For each form of `rule`, the smallest n that takes it: the forms are asked for with these."""
    choose = gettext_module.c2py(rule)
    samples = {}
    for n in range(1000):
        samples.setdefault(choose(n), n)
    return [samples[index] for index in sorted(samples)]


def catalog():
    """The widget's catalog in the active language: {"language", "plural", "messages"}."""
    language = translation.get_language() or ""
    rule = plural_rule(language) if language else ENGLISH_RULE
    messages = {message: gettext(message) for message in MESSAGES}
    for message in PLURALS:
        with translation.override(None):  # no translation: the English singular, the message's key
            key = message % _Placeholders(n=1)
        messages[key] = [message % _Placeholders(n=n) for n in _samples(rule)]
    return {"language": language, "plural": rule, "messages": messages}


def catalog_json():
    """catalog() in the active language as the widget's data-catalog holds it: JSON, made once per language."""
    return _catalog_json(translation.get_language() or "")


@lru_cache(maxsize=64)  # bounded: a site may activate languages it does not list
def _catalog_json(language):
    with translation.override(language or None):
        return json.dumps(catalog(), ensure_ascii=False, separators=(",", ":"))


@receiver(setting_changed)
def _forget_catalogs(setting, **kwargs):
    """The catalogs made before a change of the settings they come from (tests override them)."""
    if setting in {"LANGUAGES", "LANGUAGE_CODE", "LOCALE_PATHS"}:
        _catalog_json.cache_clear()
        plural_rule.cache_clear()
