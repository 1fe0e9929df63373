"""
A group's title in the reader's language: "bob changed 50 orders", with the model's plural
verbose name and the plural form the language wants for the count (ngettext), as rendering.py
writes a single event's.
"""

from django.apps import apps
from django.utils import translation
from django.utils.translation import gettext, ngettext, npgettext

from .models import Kind
from .rendering import verbose_name


def verbose_name_plural(label):
    """The model's plural verbose name in the active language; its label's model name if the model is gone."""
    try:
        return str(apps.get_model(label)._meta.verbose_name_plural)
    except (LookupError, ValueError):
        return label.partition(".")[2] or label


def _title(kind, values, count):
    # Whole sentences with the count in them, so that each language orders and inflects them its way.
    if kind == Kind.ADMIN_ADDITION:
        return ngettext("%(actor)s added %(count)d %(model)s", "%(actor)s added %(count)d %(models)s", count) % values
    if kind == Kind.ADMIN_CHANGE:
        return ngettext("%(actor)s changed %(count)d %(model)s", "%(actor)s changed %(count)d %(models)s", count) % values
    if kind == Kind.ADMIN_DELETION:
        return ngettext("%(actor)s deleted %(count)d %(model)s", "%(actor)s deleted %(count)d %(models)s", count) % values
    if kind == Kind.MODEL_CREATED:
        return npgettext("a group of tracked model events", "%(count)d %(model)s was created", "%(count)d %(models)s were created", count) % values
    if kind == Kind.MODEL_UPDATED:
        return npgettext("a group of tracked model events", "%(count)d %(model)s was updated", "%(count)d %(models)s were updated", count) % values
    if kind == Kind.MODEL_DELETED:
        return npgettext("a group of tracked model events", "%(count)d %(model)s was deleted", "%(count)d %(models)s were deleted", count) % values
    return ngettext("%(count)d notification", "%(count)d notifications", count) % values


def group_title(kind, actor, target_type, count, language):
    """The title of `count` events of `kind` by `actor` (a username or None) about `target_type`, in `language`."""
    with translation.override(language):
        values = {
            "actor": actor or gettext("someone"),
            "count": count,
            "model": verbose_name(target_type),
            "models": verbose_name_plural(target_type),
        }
        return _title(kind, values, count)
