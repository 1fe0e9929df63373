from django.urls import path

from . import group_views, unsubscribe, views

app_name = "notifications"

urlpatterns = [
    path("ws-ticket/", views.ws_ticket, name="ws-ticket"),
    path("api/notifications/", views.notification_list, name="api-notifications"),
    path("api/notifications/<int:event_id>/read/", views.mark_read, name="api-read"),
    path("api/groups/<int:group_id>/", group_views.group_members, name="api-group"),
    path("api/groups/<int:group_id>/read/", group_views.mark_group_read, name="api-group-read"),
    path("api/unread-count/", views.unread_count, name="api-unread-count"),
    path("api/read-all/", views.mark_all_read, name="api-read-all"),
    path("api/preferences/", views.preferences_view, name="api-preferences"),
    path("api/push-subscriptions/", views.push_subscriptions, name="api-push-subscriptions"),
    path("api/push-subscriptions/held/", views.push_subscription_held, name="api-push-subscription-held"),
    path("unsubscribe/<str:token>/", unsubscribe.digest_unsubscribe, name="digest-unsubscribe"),
]
