"""
permessage-deflate (RFC 7692) on the relay's sockets: off unless WSSERVER_COMPRESSION is True.

Off, an event's frame is the same bytes on every socket, framed once (fanout.py). On, a client
that offers the extension (browsers do) gets its frames compressed in a context of its own, kept
from one message to the next: an event compresses against those before it, to about a quarter
of its size, but each such socket costs the CPU of compressing every frame it gets and the
memory of a compressor and a decompressor for as long as it is open.

That memory is bounded by the windows (2**WINDOW_BITS bytes, each way: the client is asked to
compress within the same window) and zlib's MEMORY_LEVEL. 11 and 4, the pair websockets' own
documentation calls the sweet spot: measured with 1,000 sockets, 27 KiB a socket more than with
compression off (12 and 5, websockets' defaults: 44 KiB) for 4% more bytes on the wire. The
compression level stays zlib's default: level 1 saved a sixth of the compressing CPU but sent
12% more bytes. The numbers, and when they are worth it: docs/performance.md.
"""

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from notifications.conf import app_settings

WINDOW_BITS = 11
MEMORY_LEVEL = 4


def serve_options():
    """websockets.serve()'s arguments for WSSERVER_COMPRESSION."""
    if not app_settings.WSSERVER_COMPRESSION:
        return {"compression": None}
    deflate = ServerPerMessageDeflateFactory(
        server_max_window_bits=WINDOW_BITS,
        client_max_window_bits=WINDOW_BITS,
        compress_settings={"memLevel": MEMORY_LEVEL},
    )
    return {"compression": None, "extensions": [deflate]}
