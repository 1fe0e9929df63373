"""
Which connections follow which route, and delivering events to them.

A dict of sets: route → connections. Delivering an event costs one lookup per route it carries
and one `websockets.broadcast` per topic it is shown under; each frame is built once for all
its recipients, and no write is awaited, so a slow connection never holds up the others.
"""

from collections import defaultdict

from websockets.asyncio.server import broadcast

from notifications.topics import topic_of_route

from . import protocol


class Hub:
    def __init__(self, cursor="0-0"):
        self._followers = defaultdict(set)
        # The stream position of the last event delivered: what a client starting now has seen.
        self.cursor = cursor

    def follow(self, connection, routes):
        for route in routes:
            self._followers[route].add(connection)

    def unfollow(self, connection, routes):
        for route in routes:
            followers = self._followers.get(route)
            if followers is not None:
                followers.discard(connection)
                if not followers:
                    del self._followers[route]

    def deliver(self, cursor, routes, event_json):
        """
        Send an event to every connection following any of its routes, once each. Routes come
        most specific first (publishing.encode_message), so a connection that follows both
        `object:auth.user:5` and `model:auth.user` sees the event under the object topic.
        Returns the number of connections it was sent to.
        """
        self.cursor = cursor
        delivered = set()
        frames = {}
        for route in routes:
            followers = self._followers.get(route)
            if not followers:
                continue
            recipients = followers - delivered if delivered else followers
            if not recipients:
                continue
            topic = topic_of_route(route)
            if topic not in frames:
                frames[topic] = protocol.event(topic, cursor, event_json)
            broadcast(recipients, frames[topic])
            delivered |= recipients
        return len(delivered)
