"""
The Event admin: a read-only record of what was published, to whom, and the page that sends an
announcement (users with the `notifications.send_announcement` permission); users' push
subscriptions.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from .api import announce
from .links import checked_url
from .models import Audience, Event, PushSubscription, Receipt

RECIPIENTS_SHOWN = 20


class ReadOnlyAdmin(admin.ModelAdmin):
    """Events and receipts record what happened: editing them would rewrite history."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AnnouncementForm(forms.Form):
    title = forms.CharField(max_length=Event._meta.get_field("title").max_length)
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 60}))
    url = forms.CharField(
        required=False,
        max_length=Event._meta.get_field("url").max_length,
        help_text="Optional link: a path on this site (/news/) or an http(s) URL of this site.",
    )
    audience = forms.ChoiceField(choices=Audience.choices, initial=Audience.ALL, widget=forms.RadioSelect)

    def clean_url(self):
        try:
            return checked_url(self.cleaned_data["url"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    change_list_template = "admin/notifications/event/change_list.html"
    list_display = ["id", "created_at", "kind", "title", "actor", "target_type", "target_repr"]
    list_filter = ["kind", "target_type", "created_at"]
    list_select_related = ["actor"]
    search_fields = ["title", "body", "target_repr"]
    date_hierarchy = "created_at"
    readonly_fields = ["addressed_to"]

    @admin.display(description="Addressed to")
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
            audience = Audience(form.cleaned_data["audience"]).label.lower()
            self.message_user(request, f"Announcement “{form.cleaned_data['title']}” sent to {audience}.", messages.SUCCESS)
            return redirect("admin:notifications_event_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Send an announcement",
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/notifications/event/announce.html", context)


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ["event", "user", "read_at"]
    list_select_related = ["event", "user"]
    raw_id_fields = ["event", "user"]


@admin.register(PushSubscription)
class PushSubscriptionAdmin(ReadOnlyAdmin):
    """Users' devices (Web Push): seen, and deleted (the device gets no more pushes), never edited."""

    list_display = ["id", "user", "user_agent", "created_at", "last_success_at", "last_failure_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "user_agent"]
    raw_id_fields = ["user"]
