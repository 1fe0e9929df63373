"""
One push: the message an event becomes, one POST to a push service, and what its answer means.

The message is small JSON, `{"title", "body", "url", "id"}`, encrypted for the device (aes128gcm,
RFC 8291): the push service sees neither it nor the event's `data`, which stays on the site (the
service worker links to the event's page). Push services take at most 4096 bytes, so a long body
is cut. Each message carries a TTL (NOTIFICATIONS_PUSH_TTL), an Urgency (announcements are
`low`: a broadcast should not wake every phone on battery) and a Topic, so a message sent again
replaces the one the push service still holds instead of arriving twice.

The answer: 201 (or any 2xx) delivered; 404 or 410, the subscription is gone (the browser or
the user ended it) and is deleted; 429 and 5xx, and a network failure, are tried again later
(retry_delay(): Retry-After when the service gives one, else exponential backoff); anything
else (400, 403, 413: the message or the VAPID key is wrong) is a failure not worth repeating.
"""

import json
import logging
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests

from ..conf import app_settings
from . import vapid

logger = logging.getLogger(__name__)

# Plaintext bytes that fit a 4096-byte push message once aes128gcm adds its header, tag and padding.
MAX_MESSAGE = 3800
ELLIPSIS = "…"
HTTP_TIMEOUT = 10
# Tries of one push (the first included), and the backoff between them when the service names none.
TRIES = 4
BACKOFF_BASE = 0.5
# A Retry-After longer than this is not waited for: the push is given up (and logged).
MAX_RETRY_AFTER = 120

DELIVERED, GONE, RETRY, FAILED = "delivered", "gone", "retry", "failed"


@dataclass(frozen=True)
class Delivery:
    """One event for one device: everything a thread needs to push it, with no query."""

    subscription_id: int
    user_id: int
    endpoint: str
    p256dh: str
    auth: str
    message: bytes
    urgency: str
    topic: str


@dataclass(frozen=True)
class Outcome:
    kind: str  # DELIVERED, GONE, RETRY or FAILED
    status: int | None = None  # the push service's HTTP status; None: no answer
    retry_after: str | None = None  # its Retry-After header
    reason: str = ""


def message(event):
    """The JSON bytes pushed for an event (a dict as clients receive it), its body cut to fit."""

    def encoded(body):
        fields = {"title": event.get("title") or "", "body": body, "url": event.get("url") or "", "id": event.get("id")}
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()

    body = event.get("body") or ""
    if len(encoded(body)) <= MAX_MESSAGE:
        return encoded(body)
    kept, too_many = 0, len(body)  # the longest start of the body that fits with an ellipsis: bisected
    while too_many - kept > 1:
        middle = (kept + too_many) // 2
        if len(encoded(body[:middle] + ELLIPSIS)) <= MAX_MESSAGE:
            kept = middle
        else:
            too_many = middle
    return encoded(body[:kept].rstrip() + ELLIPSIS)


def urgency(event):
    return "low" if event.get("kind") == "announcement" else "normal"


def topic(event):
    """The Topic header (RFC 8030: up to 32 base64url characters): one per event."""
    return f"event-{event.get('id')}"


_local = threading.local()


def _session():
    """This thread's HTTP session (kept-alive connections to the push services), following no redirect."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
        _local.session.max_redirects = 0
    return _local.session


def send(delivery):
    """POST one delivery to its push service (blocking: the relay runs it in a thread); its Outcome."""
    # Imported here: pywebpush imports aiohttp (0.1 s), which only a relay that pushes needs to pay.
    from pywebpush import WebPushException, webpush

    try:
        response = webpush(
            {"endpoint": delivery.endpoint, "keys": {"p256dh": delivery.p256dh, "auth": delivery.auth}},
            data=delivery.message,
            vapid_private_key=vapid.signer(),
            vapid_claims=vapid.claims(),
            ttl=app_settings.NOTIFICATIONS_PUSH_TTL,
            headers={"Urgency": delivery.urgency, "Topic": delivery.topic},
            timeout=HTTP_TIMEOUT,
            requests_session=_session(),
        )
    except WebPushException as error:
        if error.response is None:
            return Outcome(FAILED, reason=error.message)
        return outcome_of(error.response.status_code, error.retry_after)
    except requests.TooManyRedirects:
        return Outcome(FAILED, reason="the push service answered with a redirect, which is not followed")
    except requests.RequestException as error:
        return Outcome(RETRY, reason=f"{type(error).__name__}: {error}")
    return outcome_of(response.status_code)


def outcome_of(status, retry_after=None):
    if 200 <= status < 300:
        return Outcome(DELIVERED, status)
    if status in (404, 410):
        return Outcome(GONE, status)
    if status == 429 or status >= 500:
        return Outcome(RETRY, status, retry_after)
    return Outcome(FAILED, status)


def retry_delay(outcome, tries):
    """Seconds to wait before trying again after `tries` tries ended in `outcome`; None: give up."""
    if outcome.kind != RETRY or tries >= TRIES:
        return None
    if outcome.retry_after is not None:
        delay = _seconds(outcome.retry_after)
        if delay is not None:
            return delay if delay <= MAX_RETRY_AFTER else None
    return BACKOFF_BASE * 2 ** (tries - 1) * random.uniform(1, 1.5)


def _seconds(retry_after):
    """Retry-After as seconds from now: a number of seconds, or an HTTP date; None when it is neither."""
    text = retry_after.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())
