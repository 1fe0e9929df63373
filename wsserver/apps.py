from django.apps import AppConfig


class WsserverConfig(AppConfig):
    """The WebSocket relay: its `runwsserver` command and the asyncio server behind it."""

    name = "wsserver"
    verbose_name = "WebSocket relay"

    def ready(self):
        from . import checks  # noqa: F401  (registers itself)
