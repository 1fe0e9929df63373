"""The demo site's URLs plus the view bench/notify_cost.py times."""

from django.urls import path

from project.urls import urlpatterns as site_urlpatterns

from . import views

urlpatterns = [path("bench/notify/<str:mode>/", views.notify_view), *site_urlpatterns]
