"""
Web Push from the relays: each inbox event pushed once, whatever the number of relay processes.

The relays read the events stream together as one Redis consumer group (GROUP), so each entry
goes to one of them (XREADGROUP), which acknowledges it (XACK) once every push it makes is
delivered, gone or given up. Every CLAIM_INTERVAL a relay marks the entries it holds as fresh
(however long an announcement to many devices takes); an entry its relay stopped marking (it
was killed, or lost Redis or the database meanwhile) is claimed by any relay after
CLAIM_IDLE_MS (XAUTOCLAIM) and pushed again, and a relay that stops cleanly hands its entries
over at once. A device may then get a message twice: the service worker shows both under one
tag (the event's), and the push service replaces an undelivered one with the same Topic, so a
user sees it once.

Who gets what is notifications.webpush's to decide (recipients.py), in a thread, as are the
POSTs (sending.py): this module only reads, schedules the retries (Retry-After, or backoff) and
acknowledges. Started by server.run only when VAPID keys are set.
"""

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from django.db import DatabaseError
from redis.exceptions import ResponseError

from notifications import redisconf
from notifications.webpush import recipients, sending, subscriptions, vapid

from . import bus, metrics
from .threads import run_push

logger = logging.getLogger(__name__)

GROUP = "push"
BATCH = 50
# Entries pushed at once by one relay; the next read waits for a free slot.
IN_FLIGHT = 32
# Seconds between passes claiming abandoned entries, and between the marks a relay puts on the
# entries it is pushing (XCLAIM to itself) so that none is taken from it however long it takes.
CLAIM_INTERVAL = 30.0
# An entry left unmarked this long is taken as abandoned (its relay died, or lost Redis).
CLAIM_IDLE_MS = 4 * int(CLAIM_INTERVAL * 1000)
STOP_WAIT = 1.0
# Pending entries a stopping relay hands over (more wait for CLAIM_IDLE_MS).
HAND_OVER = 1000


def enabled():
    """Whether this relay pushes: VAPID keys are set (and right: the relay does not start past check E030)."""
    return vapid.enabled()


class PushSender:
    """This relay's member of the consumer group: reads or claims entries, pushes each, acknowledges it."""

    def __init__(self, redis):
        self.redis = redis
        self.key = redisconf.stream_key()
        # Unique per process and start: a restarted relay does not take its former self's pending entries as its own.
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.slots = asyncio.Semaphore(IN_FLIGHT)
        self.tasks = set()
        self.in_flight = set()  # ids of the entries read here and not done with yet

    async def run(self):
        """Read, claim and push until cancelled; Redis outages are waited out with backoff."""
        delays = bus.backoff_delays()
        claim_at = 0.0
        loop = asyncio.get_running_loop()
        marking = asyncio.create_task(self._keep_marking())
        try:
            while True:
                try:
                    entries = []
                    if loop.time() >= claim_at:
                        entries = await self._claim()
                        claim_at = loop.time() + (0 if len(entries) == BATCH else CLAIM_INTERVAL)
                    if not entries:
                        entries = await self._read()
                except bus.REDIS_DOWN:
                    await asyncio.sleep(next(delays))
                    continue
                except Exception:
                    logger.exception("Could not read the events stream for Web Push (trying again)")
                    await asyncio.sleep(next(delays))
                    continue
                delays = bus.backoff_delays()
                self.in_flight.update(entry_id for entry_id, _fields in entries)  # marked from now on
                for entry_id, fields in entries:
                    await self.slots.acquire()
                    task = asyncio.create_task(self._push(entry_id, fields))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
        finally:
            for task in [marking, *self.tasks]:
                task.cancel()
            await asyncio.gather(marking, *self.tasks, return_exceptions=True)
            await self._leave()

    async def _keep_marking(self):
        while True:
            await asyncio.sleep(CLAIM_INTERVAL)
            with contextlib.suppress(*bus.REDIS_DOWN, ResponseError):
                await self.mark_in_flight()

    async def mark_in_flight(self):
        """Mark the entries held here as just read (idle 0): no relay claims them while this one works on them."""
        if self.in_flight:
            await self.redis.xclaim(self.key, GROUP, self.consumer, 0, sorted(self.in_flight), justid=True)

    async def _leave(self):
        """
        On a clean stop: entries still pending here are handed over (marked idle for CLAIM_IDLE_MS,
        so another relay's next claim takes them, within CLAIM_INTERVAL); with none, this relay
        leaves the group.
        """
        with contextlib.suppress(*bus.REDIS_DOWN, ResponseError, TimeoutError):
            async with asyncio.timeout(STOP_WAIT):
                pending = await self.redis.xpending_range(self.key, GROUP, "-", "+", HAND_OVER, consumername=self.consumer)
                if pending:
                    ids = [each["message_id"] for each in pending]
                    await self.redis.xclaim(self.key, GROUP, self.consumer, 0, ids, idle=CLAIM_IDLE_MS, justid=True)
                else:
                    await self.redis.xgroup_delconsumer(self.key, GROUP, self.consumer)

    async def _read(self):
        """New entries for this relay: [(entry id, fields)]."""
        response = await self._in_group(self.redis.xreadgroup(GROUP, self.consumer, {self.key: ">"}, count=BATCH, block=bus.BLOCK_MS))
        return [entry for _stream, entries in response or () for entry in entries]

    async def _claim(self):
        """Entries other relays (or this one, before a Redis outage) left pending too long, now this relay's."""
        claimed = await self._in_group(self.redis.xautoclaim(self.key, GROUP, self.consumer, CLAIM_IDLE_MS, count=BATCH, justid=True))
        if not claimed:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in claimed:
            pipe.xrange(self.key, entry_id, entry_id)
        found = await pipe.execute()
        # An entry trimmed from the stream meanwhile has no fields left: it is acknowledged unpushed.
        return [(entry_id, entries[0][1] if entries else None) for entry_id, entries in zip(claimed, found)]

    async def _in_group(self, command):
        """
        Await a command of the group; None, after making the group, when there is none yet (the
        first relay, a new Redis, or one that lost its data): it reads what is published from now on.
        """
        try:
            return await command
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
        try:
            await self.redis.xgroup_create(self.key, GROUP, id="$", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):  # another relay made it first
                raise
        return None

    async def _push(self, entry_id, fields):
        """Push one entry to the devices it is for, then acknowledge it (not after an outage: it is claimed again)."""
        try:
            if fields is not None:
                plan = await run_push(recipients.plan, fields)
                for reason, count in plan.skipped.items():
                    metrics.PUSH_SKIPPED.labels(reason).inc(count)
                results = await asyncio.gather(*(self._deliver(plan.event_id, delivery) for delivery in plan.deliveries))
                if results:
                    await run_push(subscriptions.record, *_by_outcome(results))
            await self.redis.xack(self.key, GROUP, entry_id)
        except (*bus.REDIS_DOWN, DatabaseError) as error:
            logger.warning("Could not push stream entry %s (%s): another try once it has been pending for a while", entry_id, error)
        except Exception:
            logger.exception("Could not push stream entry %s; it is dropped", entry_id)
            with contextlib.suppress(*bus.REDIS_DOWN):
                await self.redis.xack(self.key, GROUP, entry_id)
        finally:
            self.in_flight.discard(entry_id)
            self.slots.release()

    async def _deliver(self, event_id, delivery):
        """Push one message, tried again while the push service asks for it; (delivery, last outcome)."""
        tries = 0
        while True:
            outcome = await run_push(sending.send, delivery)
            tries += 1
            delay = sending.retry_delay(outcome, tries)
            if delay is None:
                break
            metrics.PUSHES.labels("retried").inc()
            await asyncio.sleep(delay)
        kind = sending.FAILED if outcome.kind == sending.RETRY else outcome.kind
        metrics.PUSHES.labels(kind).inc()
        if kind == sending.FAILED:
            # Never the endpoint: it is the device's address, a secret of sorts.
            logger.warning(
                "Gave up pushing event %s to subscription %s after %d tries: %s",
                event_id, delivery.subscription_id, tries, outcome.status or outcome.reason,
            )
        return delivery, kind


def _by_outcome(results):
    """(delivered, failed, gone) lists of (subscription id, endpoint), for subscriptions.record."""
    sorted_out = {sending.DELIVERED: [], sending.FAILED: [], sending.GONE: []}
    for delivery, kind in results:
        sorted_out[kind].append((delivery.subscription_id, delivery.endpoint))
    return sorted_out[sending.DELIVERED], sorted_out[sending.FAILED], sorted_out[sending.GONE]
