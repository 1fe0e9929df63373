"""
Keepalive pings for all of a relay process's connections from one task, instead of websockets'
task per connection (its Task, coroutine and timer cost about 2 KiB a socket: 200 MiB at
100,000 sockets; docs/performance.md).

Every WSSERVER_PING_INTERVAL seconds each open connection is sent a ping, and one that has not
answered it an interval later is closed (1011), as websockets' own keepalive does with its
defaults (ping_timeout equal to ping_interval): dead peers are found, and proxies and NAT see
traffic on idle sockets. Pings go out in slices spread over the interval, so tens of thousands
of sockets are not pinged in one burst between two events.

A connection with bytes waiting in its write buffer is not pinged that round: its ping would
wait behind them (websockets' keepalive waits too, without a timeout), and the kernel's own
retransmission timeout ends a dead peer that has unacknowledged data.
"""

import asyncio

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from . import protocol

SLICE = 200  # connections pinged together


class Keepalive:
    def __init__(self, interval, spawn):
        self.interval = interval
        self.spawn = spawn  # runs a coroutine in the background (Relay.spawn)
        self._unanswered = {}  # pong future → (connection, loop time of its ping), oldest first

    async def run(self, connections):
        """Ping `connections()` (the open sockets, asked again each round) until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            current = list(connections())
            pause = self.interval / (len(current) // SLICE + 1)
            for start in range(0, len(current), SLICE):
                self._close_unanswered(loop.time() - self.interval)
                for connection in current[start : start + SLICE]:
                    await self._ping(connection, loop)
                await asyncio.sleep(pause)
            await asyncio.sleep(pause)

    async def _ping(self, connection, loop):
        if connection.state is not State.OPEN or connection.transport.get_write_buffer_size():
            return
        try:
            pong = await connection.ping()
        except ConnectionClosed:
            return
        self._unanswered[pong] = (connection, loop.time())
        pong.add_done_callback(self._answered)  # a pong, or the connection closed

    def _answered(self, pong):
        self._unanswered.pop(pong, None)

    def _close_unanswered(self, deadline):
        """Close the connections whose ping, sent before `deadline`, is still unanswered."""
        while self._unanswered:
            pong = next(iter(self._unanswered))
            connection, pinged = self._unanswered[pong]
            if pinged > deadline:
                return
            del self._unanswered[pong]
            if connection.state is State.OPEN:
                self.spawn(connection.close(protocol.INTERNAL_ERROR, "keepalive ping timeout"))
