"""
Writing text frames to many connections: each frame built once, each connection written once.

`websockets.broadcast` frames a message again for every connection (a Frame, its header, a copy
of the payload) and writes it at once: a system call per message and connection. Here:

- A frame is framed once for all its recipients. A server's frames are not masked (RFC 6455,
  section 5.1), so a text frame is the same bytes on every connection without an extension:
  websockets' own Frame.serialize builds them, and each such connection gets those bytes. A
  connection that negotiated permessage-deflate (compression.py) compresses with a context of
  its own: its protocol frames (and compresses) each message for it, as broadcast would.
- Frames are queued per connection, then each connection's are written in one call (Writes): a
  batch of events (one read of the Redis stream) costs one system call per connection, not one
  per event and connection. Nothing runs between queueing and flush() (no await), so nothing
  else can write to a connection meanwhile, and its frames keep their order.

A connection is written to only while its protocol is OPEN (after a close frame, sent or
received, nothing more is; broadcast skips it too) and not in the middle of a fragmented message
(broadcast skips it, with a warning; the relay sends none). Its protocol writes out what it has
to send after each call, so it holds nothing when its shared bytes go out; should it hold
something, the connection is framed by its protocol, in order. Nothing is awaited: as with
broadcast, a slow connection never holds up the others, and what it has not read waits in its
transport's buffer, where the slow-client watchdog (server.py) looks.
"""

import gc

from websockets import frames
from websockets.protocol import OPEN


class SharedFrame:
    """A text frame for many connections: its payload, and its bytes where no extension applies."""

    __slots__ = ("data", "payload")

    def __init__(self, text):
        self.payload = text.encode()
        self.data = frames.Frame(frames.Opcode.TEXT, self.payload).serialize(mask=False)


class Writes:
    """
    Frames queued for many connections, written by flush(): each connection's in one call, in
    the order they were queued. A batch of one frame (one event, as events come one by one) is
    written straight to its recipients. The queue holds the frames and the sets of their
    recipients as given (nothing changes them before flush(): no await comes between), and is
    flushed once it holds MAX_QUEUED deliveries, whatever the batch's size.
    """

    MAX_QUEUED = 100_000

    def __init__(self):
        self._sends = []  # (SharedFrame, connections), oldest first
        self._count = 0

    def send(self, connections, text):
        self._sends.append(((SharedFrame(text),), connections))
        self._count += len(connections)
        if self._count >= self.MAX_QUEUED:
            self.flush()

    def flush(self):
        sends, self._sends, self._count = self._sends, [], 0
        if len(sends) == 1:
            frames, connections = sends[0]
            for connection in connections:
                _write(connection, frames)
        elif sends:
            # A list per connection, alive until written: were the cyclic garbage collector to run
            # meanwhile, it would move them to older generations, whose collections go through the
            # whole heap (a 35 ms pause with 400,000 objects, once every 40 batches of 100 events to
            # 1,000 connections). They hold no cycles, and reference counting frees them at once.
            collecting = gc.isenabled()
            gc.disable()
            try:
                _write_gathered(sends)
            finally:
                if collecting:
                    gc.enable()


def _write_gathered(sends):
    """Each connection's frames of these sends, oldest first, in one write."""
    queued = {}  # connection → [SharedFrame]
    for (frame,), connections in sends:
        for connection in connections:
            mine = queued.get(connection)
            if mine is None:
                queued[connection] = [frame]
            else:
                mine.append(frame)
    for connection, mine in queued.items():
        _write(connection, mine)


def _write(connection, frames):
    """Write these frames to the connection, in one call, if it is open and not sending a fragmented message."""
    protocol = connection.protocol
    if protocol.state is not OPEN:
        return
    if protocol.expect_continuation_frame:
        connection.logger.warning("skipped broadcast: sending a fragmented message")
        return
    try:
        if protocol.extensions or protocol.writes:
            for frame in frames:
                protocol.send_text(frame.payload)
            connection.transport.writelines(protocol.data_to_send())  # frames only: the stream ends after OPEN
        elif len(frames) == 1:
            connection.transport.write(frames[0].data)
        else:
            connection.transport.writelines([frame.data for frame in frames])
    except Exception as error:  # as broadcast does: the others still get theirs
        connection.logger.warning("skipped broadcast: failed to write message: %s", error)


def send(connections, text):
    """Send `text` as one text frame to every open connection among `connections`, now."""
    writes = Writes()
    writes.send(connections, text)
    writes.flush()
