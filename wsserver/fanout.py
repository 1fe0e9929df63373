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
from websockets import frames
from websockets.protocol import OPEN


def text_frame(text):
    """The bytes of an unmasked, unfragmented text frame carrying `text`, as websockets writes it."""
    return frames.Frame(frames.Opcode.TEXT, text.encode()).serialize(mask=False)


class SharedFrame:
    """A text frame to send: its text, and its bytes on a connection without extensions."""

    __slots__ = ("text", "data")

    def __init__(self, text):
        self.text = text
        self.data = text_frame(text)


class Writes:
    """
    Frames for many connections, queued, then written by flush(): each connection's in one call,
    in the order they were queued, so that a batch of events costs one write (one system call,
    where the socket takes it all) per connection instead of one per event and connection. The
    queue holds references to frames shared by all their recipients, and is flushed once it
    holds MAX_QUEUED of them, whatever the batch's size.
    """

    MAX_QUEUED = 100_000

    def __init__(self):
        self._queued = {}  # connection → [SharedFrame]
        self._count = 0

    def send(self, connections, text):
        frame = SharedFrame(text)
        queued = self._queued
        for connection in connections:
            mine = queued.get(connection)
            if mine is None:
                queued[connection] = [frame]
            else:
                mine.append(frame)
        self._count += len(connections)
        if self._count >= self.MAX_QUEUED:
            self.flush()

    def flush(self):
        queued, self._queued, self._count = self._queued, {}, 0
        for connection, mine in queued.items():
            protocol = connection.protocol
            if protocol.state is not OPEN:
                continue
            if protocol.extensions or protocol.writes or protocol.expect_continuation_frame:
                for frame in mine:
                    broadcast([connection], frame.text)
                continue
            try:
                connection.transport.writelines([frame.data for frame in mine])
            except Exception as error:  # as broadcast does: the others still get theirs
                connection.logger.warning("skipped broadcast: failed to write message: %s", error)


def send(connections, text):
    """Send `text` as one text frame to every open connection among `connections`, now."""
    writes = Writes()
    writes.send(connections, text)
    writes.flush()
