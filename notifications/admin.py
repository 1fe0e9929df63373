from django.contrib import admin

from .models import Event, Receipt, Recipient


class RecipientInline(admin.TabularInline):
    model = Recipient
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "kind", "title", "actor", "target_type", "target_repr"]
    list_filter = ["kind", "target_type", "created_at"]
    search_fields = ["title", "body", "target_repr"]
    date_hierarchy = "created_at"
    raw_id_fields = ["actor"]
    inlines = [RecipientInline]


@admin.register(Receipt)
class ReceiptAdmin(admin.ModelAdmin):
    list_display = ["event", "user", "read_at"]
    raw_id_fields = ["event", "user"]
