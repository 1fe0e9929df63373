from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    path("ws-ticket/", views.ws_ticket, name="ws-ticket"),
]
