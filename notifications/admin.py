"""The Event admin: a read-only record of what was published, to whom."""

from django.contrib import admin

from .models import Event, Receipt

RECIPIENTS_SHOWN = 20


class ReadOnlyAdmin(admin.ModelAdmin):
    """Events and receipts record what happened: editing them would rewrite history."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
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


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ["event", "user", "read_at"]
    list_select_related = ["event", "user"]
    raw_id_fields = ["event", "user"]
