from django.apps import AppConfig, apps
from django.utils.translation import gettext_lazy


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = gettext_lazy("Notifications")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks, revocation, tracking  # noqa: F401  (checks registers itself)
        from .webpush import lifetime

        tracking.connect()
        revocation.connect()
        lifetime.connect()
        if apps.is_installed("django.contrib.admin"):
            from . import admin_log

            admin_log.connect()
