"""
The Event admin: a read-only record of what was published, to whom, and the page that sends an
announcement (users with the `notifications.send_announcement` permission). The Preferences
admin: what each user chose, what applies to them, and a change saved through
preferences.update, so the relays and the user's sockets learn it as from the HTTP API. Users'
push subscriptions (their devices).
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import router, transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, gettext_lazy

from . import preferences
from .api import announce
from .links import checked_url
from .models import Audience, DigestFrequency, Event, Preferences, PushSubscription, Receipt

RECIPIENTS_SHOWN = 20


class ReadOnlyAdmin(admin.ModelAdmin):
    """Events and receipts record what happened: editing them would rewrite history."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AnnouncementForm(forms.Form):
    title = forms.CharField(label=gettext_lazy("Title"), max_length=Event._meta.get_field("title").max_length)
    body = forms.CharField(
        label=gettext_lazy("Body"), required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 60})
    )
    url = forms.CharField(
        label=gettext_lazy("Link"),
        required=False,
        max_length=Event._meta.get_field("url").max_length,
        help_text=gettext_lazy("Optional link: a path on this site (/news/) or an http(s) URL of this site."),
    )
    audience = forms.ChoiceField(
        label=gettext_lazy("Audience"), choices=Audience.choices, initial=Audience.ALL, widget=forms.RadioSelect
    )

    def clean_url(self):
        try:
            return checked_url(self.cleaned_data["url"])
        except ValueError:
            raise forms.ValidationError(
                gettext("%(url)r is not a link into this site: use a path (/orders/5/) or an http(s) URL of this site.")
                % {"url": self.cleaned_data["url"].strip()}
            ) from None


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    change_list_template = "admin/notifications/event/change_list.html"
    list_display = ["id", "created_at", "kind", "title", "actor", "target_type", "target_repr"]
    list_filter = ["kind", "target_type", "created_at"]
    list_select_related = ["actor"]
    search_fields = ["title", "body", "target_repr"]
    date_hierarchy = "created_at"
    readonly_fields = ["addressed_to"]

    @admin.display(description=gettext_lazy("Addressed to"))
    def addressed_to(self, event):
        """The first recipients only: an event may be addressed to a million users."""
        recipients = event.recipients.select_related("user", "group")[: RECIPIENTS_SHOWN + 1]
        names = [str(r.user or r.group or r.get_audience_display()) for r in recipients]
        more = " …" if len(names) > RECIPIENTS_SHOWN else ""
        return ", ".join(names[:RECIPIENTS_SHOWN]) + more or "—"

    def get_urls(self):
        announce_view = self.admin_site.admin_view(self.announce_view)
        return [path("announce/", announce_view, name="notifications_event_announce"), *super().get_urls()]

    def has_announce_permission(self, request):
        return request.user.has_perm("notifications.send_announcement")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_announce": self.has_announce_permission(request)}
        return super().changelist_view(request, extra_context)

    def announce_view(self, request):
        if not self.has_announce_permission(request):
            raise PermissionDenied
        form = AnnouncementForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            announce(actor=request.user, **form.cleaned_data)
            message = gettext("Announcement “%(title)s” sent to: %(audience)s.") % {
                "title": form.cleaned_data["title"],
                "audience": Audience(form.cleaned_data["audience"]).label,
            }
            self.message_user(request, message, messages.SUCCESS)
            return redirect("admin:notifications_event_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Send an announcement"),
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/notifications/event/announce.html", context)


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ["event", "user", "read_at"]
    list_select_related = ["event", "user"]
    raw_id_fields = ["event", "user"]


# Preferences -------------------------------------------------------------------------------------


def shown(name, value):
    """A preference's value as staff read it."""
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if name == "digest":
        return DigestFrequency(value).label
    if name == "language":
        return gettext(dict(settings.LANGUAGES).get(value, value)) if value else gettext("the site's language")
    if name.startswith("muted_"):
        return ", ".join(value) or gettext("nothing")
    return str(value)


def applied_value(name, row):
    """What applies for one preference, and whether it is the site's default."""
    value = shown(name, getattr(preferences.applied(row), name))
    return value if preferences.chosen(row)[name] is not None else gettext("%(value)s (site default)") % {"value": value}


class MutesField(forms.JSONField):
    """A JSON list of mutes; left empty (rather than "null"), the site's default."""

    def prepare_value(self, value):
        return "" if value is None else super().prepare_value(value)


class PreferencesForm(forms.ModelForm):
    """The model's fields, each empty choice named as the site's default it stands for, validated by preferences.clean."""

    language = forms.ChoiceField(required=False)
    muted_kinds = MutesField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy('A JSON list of kinds, e.g. ["model.updated", "admin.change"]; empty: the site\'s default.'),
    )
    muted_topics = MutesField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy(
            'A JSON list of model or object topics, e.g. ["model:shop.order", "object:shop.order:5"]; empty: the site\'s default.'
        ),
    )

    class Meta:
        model = Preferences
        fields = ["user", *preferences.CHOICES]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        defaults = preferences.applied(None)
        default = gettext("Site default (%(value)s)")
        for name in ("toasts", "push"):
            self.fields[name].widget.choices = [
                ("unknown", default % {"value": shown(name, getattr(defaults, name))}),
                ("true", gettext("Yes")),
                ("false", gettext("No")),
            ]
        self.fields["digest"].choices = [("", default % {"value": shown("digest", defaults.digest)}), *DigestFrequency.choices]
        self.fields["language"].choices = [("", default % {"value": shown("language", defaults.language)}), *settings.LANGUAGES]

    def clean(self):
        cleaned_data = super().clean()
        given = {name: cleaned_data[name] for name in preferences.CHOICES if name in cleaned_data}
        try:
            self.preferences = preferences.clean({name: None if value == "" else value for name, value in given.items()})
        except ValidationError as error:
            for name, problems in error.message_dict.items():
                self.add_error(name if name in self.fields else None, problems)
        return cleaned_data


def chosen_filter(name, values):
    """A list filter on what users chose for `name` ({parameter: (stored value, label)}), or left to the site."""

    class ChosenFilter(admin.SimpleListFilter):
        title = Preferences._meta.get_field(name).verbose_name
        parameter_name = name
        # What a row that follows the site's default holds: null, or "" in a text column.
        stored = {
            "default": None if Preferences._meta.get_field(name).null else "",
            **{key: value for key, (value, _label) in values.items()},
        }

        def lookups(self, request, model_admin):
            return [("default", gettext("Site default")), *((key, label) for key, (_value, label) in values.items())]

        def queryset(self, request, queryset):
            if self.value() not in self.stored:
                return queryset
            return queryset.filter(**{name: self.stored[self.value()]})  # None: IS NULL

    return ChosenFilter


APPLIED_LABELS = [
    ("toasts", gettext_lazy("Toasts")),
    ("digest", gettext_lazy("Email digest")),
    ("push", gettext_lazy("Push")),
    ("language", gettext_lazy("Language")),
    ("muted_kinds", gettext_lazy("Muted kinds")),
    ("muted_topics", gettext_lazy("Muted topics")),
]


ON_OFF = {"yes": (True, gettext_lazy("Yes")), "no": (False, gettext_lazy("No"))}


@admin.register(Preferences)
class PreferencesAdmin(admin.ModelAdmin):
    form = PreferencesForm
    list_display = ["user", "toasts_applied", "digest_applied", "push_applied", "language_applied", "mutes", "updated_at"]
    list_select_related = ["user"]
    list_filter = [
        chosen_filter("digest", {value: (value, label) for value, label in DigestFrequency.choices}),
        chosen_filter("toasts", ON_OFF),
        chosen_filter("push", ON_OFF),
    ]
    raw_id_fields = ["user"]
    fields = ["user", *preferences.CHOICES, "applied", "updated_at"]
    readonly_fields = ["applied", "updated_at"]

    def get_search_fields(self, request):
        return [f"user__{get_user_model().USERNAME_FIELD}"]

    def get_readonly_fields(self, request, obj=None):
        # The user is the row's primary key: changing it would move the row to someone else.
        return [*self.readonly_fields, "user"] if obj is not None else self.readonly_fields

    @admin.display(description=gettext_lazy("Toasts"))
    def toasts_applied(self, row):
        return applied_value("toasts", row)

    @admin.display(description=gettext_lazy("Email digest"))
    def digest_applied(self, row):
        return applied_value("digest", row)

    @admin.display(description=gettext_lazy("Push"))
    def push_applied(self, row):
        return applied_value("push", row)

    @admin.display(description=gettext_lazy("Language"))
    def language_applied(self, row):
        return applied_value("language", row)

    @admin.display(description=gettext_lazy("Muted"))
    def mutes(self, row):
        choices = preferences.applied(row)
        return ", ".join([*choices.muted_kinds, *choices.muted_topics]) or "—"

    @admin.display(description=gettext_lazy("What applies now"))
    def applied(self, row):
        rows = format_html_join("", "<li>{}: {}</li>", ((label, applied_value(name, row)) for name, label in APPLIED_LABELS))
        return format_html("<ul>{}</ul>", rows)

    def save_model(self, request, obj, form, change):
        """Through preferences.update: stored, and the relays told once the admin's transaction commits."""
        preferences.update(obj.user, form.preferences)
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        tell_relays([obj.user_id])

    def delete_queryset(self, request, queryset):
        user_ids = list(queryset.values_list("user_id", flat=True))
        super().delete_queryset(request, queryset)
        tell_relays(user_ids)


def tell_relays(user_ids):
    """Once deleted rows are committed, the relays learn the site's defaults that now apply to these users."""

    def publish():
        for user_id, choices in preferences.choices_of(user_ids).items():
            preferences.publish(user_id, choices)

    transaction.on_commit(publish, using=router.db_for_write(Preferences))


@admin.register(PushSubscription)
class PushSubscriptionAdmin(ReadOnlyAdmin):
    """Users' devices (Web Push): seen, and deleted (the device gets no more pushes), never edited."""

    list_display = ["id", "user", "user_agent", "created_at", "last_success_at", "last_failure_at"]
    exclude = ["login_id"]  # which login made it: an id that means nothing to a reader
    list_select_related = ["user"]
    search_fields = ["user__username", "user_agent"]
    raw_id_fields = ["user"]
