"""
Writing one text frame to many connections, framed once.

A server's frames are not masked (RFC 6455, section 5.1), so a text frame is the same bytes on
every connection that negotiated no extension: those bytes are built once, by websockets' own
Frame.serialize, and written to each such connection's transport. `websockets.broadcast` builds
them again for every connection (a Frame, its header, a copy of the payload): at 1,000 clients
that was more than half of the relay's own (user) CPU time per delivery (docs/performance.md).

A connection gets the shared bytes only when websockets would have written exactly those bytes
to it, now: its protocol is OPEN (no close frame sent or received: after one, nothing more is
written, as broadcast skips it), no fragmented message is under way on it, it negotiated no
extension (permessage-deflate compresses each connection's frames with a context of its own),
and its protocol holds no bytes of its own not yet written (websockets writes them out after
each call, so none are expected; should some be, writing ours first would reorder them). Every
other connection is left to `websockets.broadcast`, which frames for it as before. Nothing is
awaited: as with broadcast, a slow connection never holds up the others, and what it has not
read waits in its transport's buffer, where the slow-client watchdog (server.py) looks.
"""

from websockets.asyncio.server import broadcast
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN


def text_frame(text):
    """The bytes of an unmasked, unfragmented text frame carrying `text`, as websockets writes it."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def send(connections, text):
    """Send `text` as one text frame to every open connection among `connections`."""
    frame = None
    others = []
    for connection in connections:
        protocol = connection.protocol
        if protocol.state is not OPEN:
            continue
        if protocol.extensions or protocol.writes or protocol.expect_continuation_frame:
            others.append(connection)
            continue
        if frame is None:
            frame = text_frame(text)
        try:
            connection.transport.write(frame)
        except Exception as error:  # as broadcast does: the others still get it
            connection.logger.warning("skipped broadcast: failed to write message: %s", error)
    if others:
        broadcast(others, text)
