"""
The Django Channels peer: every WebSocket connection joins one group and receives, as it is,
each text the group is sent. Run by daphne:

    DJANGO_SETTINGS_MODULE=channels_peer.settings daphne -b 127.0.0.1 -p 8767 channels_peer.asgi:application
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_peer.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench"


class RelayConsumer(AsyncWebsocketConsumer):
    groups = [GROUP]  # joined on connect, left on disconnect, by Channels itself

    async def connect(self):
        await self.accept()

    async def bench_event(self, message):
        await self.send(text_data=message["text"])


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("ws/", RelayConsumer.as_asgi())]),
    }
)
