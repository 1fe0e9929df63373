"""
Storing the devices a user subscribed: what the push-subscriptions endpoint accepts.

The body is the browser's `PushSubscription.toJSON()`: `{"endpoint", "keys": {"p256dh", "auth"},
"expirationTime"}`. Each part is checked before anything is stored, because the relay will
encrypt for those keys and POST to that endpoint: a point that is not on the curve would fail
every push, and an endpoint outside the push services (NOTIFICATIONS_PUSH_SERVICES) would let a
user make the relay POST into the site's own network.

How long a subscription lasts (the login that made it) is lifetime.py's.
"""

import fnmatch
from datetime import datetime
from datetime import timezone as dt_timezone
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError
from django.db import IntegrityError, router, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..models import PushSubscription
from .vapid import b64url_decode

MAX_ENDPOINT = PushSubscription._meta.get_field("endpoint").max_length
MAX_USER_AGENT = PushSubscription._meta.get_field("user_agent").max_length


DEFAULT_PORTS = {"https": 443, "http": 80}


def endpoint_allowed(endpoint):
    """Whether an endpoint is on one of NOTIFICATIONS_PUSH_SERVICES ("https://*.example.com" matches subdomains)."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return False
    if parts.username or parts.password or not parts.hostname or "*" in parts.hostname:
        return False
    origin = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port and port != DEFAULT_PORTS.get(parts.scheme) else "")
    return any(fnmatch.fnmatchcase(origin, service.lower().rstrip("/")) for service in app_settings.NOTIFICATIONS_PUSH_SERVICES)


def endpoint_text(endpoint, missing):
    """`endpoint` if it could be one (a URL's text, stored as it is); ValidationError(`missing`) when there is none."""
    if not isinstance(endpoint, str) or not endpoint:
        raise ValidationError(missing)
    if len(endpoint) > MAX_ENDPOINT:
        raise ValidationError(_("An endpoint is at most %(max)d characters long.") % {"max": MAX_ENDPOINT})
    if any(char.isspace() or not char.isprintable() for char in endpoint):
        raise ValidationError(_("An endpoint is a URL: no spaces or control characters."))
    return endpoint


def clean_endpoint(endpoint):
    endpoint_text(endpoint, _("Send the subscription's endpoint URL."))
    if not endpoint_allowed(endpoint):
        raise ValidationError(_("This endpoint is not on a push service the site sends to (NOTIFICATIONS_PUSH_SERVICES)."))
    return endpoint


def _p256dh(value):
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(value))
    except (ValueError, TypeError):
        raise ValidationError(_("keys.p256dh is not a base64url P-256 public key.")) from None
    return value.rstrip("=")


def _auth(value):
    try:
        secret = b64url_decode(value)
    except ValueError:
        secret = b""
    if len(secret) != 16:
        raise ValidationError(_("keys.auth is not a base64url 16-byte secret."))
    return value.rstrip("=")


def _expiration(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValidationError(_("expirationTime is milliseconds since the epoch, or null."))
    try:
        return datetime.fromtimestamp(value / 1000, dt_timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise ValidationError(_("expirationTime is out of range.")) from None


def clean(data):
    """{endpoint, p256dh, auth, expires_at} from a PushSubscription.toJSON(); ValidationError({field: [messages]})."""
    if not isinstance(data, dict):
        raise ValidationError({"__all__": [_("Send the browser's PushSubscription.toJSON() as a JSON object.")]})
    errors, cleaned = {}, {}

    def take(name, error_key, cleaner, value):
        try:
            cleaned[name] = cleaner(value)
        except ValidationError as error:
            errors.setdefault(error_key, []).extend(error.messages)

    take("endpoint", "endpoint", clean_endpoint, data.get("endpoint"))
    keys = data.get("keys")
    if isinstance(keys, dict):
        take("p256dh", "keys", _p256dh, keys.get("p256dh"))
        take("auth", "keys", _auth, keys.get("auth"))
    else:
        errors["keys"] = [_('Send the subscription\'s keys: {"p256dh": ..., "auth": ...}.')]
    take("expires_at", "expirationTime", _expiration, data.get("expirationTime"))
    if errors:
        raise ValidationError(errors)
    return cleaned


def subscribe(user, data, user_agent="", login_id=""):
    """
    Store (or update) the subscription `data` describes for `user`, made in the login
    `login_id` (webpush.lifetime): (subscription, created). An endpoint already stored for
    another user becomes this one's: the browser is theirs now.
    """
    fields = {**clean(data), "user_id": user.pk, "user_agent": (user_agent or "")[:MAX_USER_AGENT], "login_id": login_id}
    endpoint = fields.pop("endpoint")
    subscriptions = PushSubscription.objects.using(router.db_for_write(PushSubscription))
    try:
        with transaction.atomic(using=subscriptions.db):
            return subscriptions.update_or_create(endpoint=endpoint, defaults=fields)
    except IntegrityError:  # another request stored this endpoint at the same moment: update it
        return subscriptions.update_or_create(endpoint=endpoint, defaults=fields)


def _named_endpoint(data, missing):
    try:
        return endpoint_text(data.get("endpoint") if isinstance(data, dict) else None, missing)
    except ValidationError as error:
        raise ValidationError({"endpoint": error.messages}) from None


def held(user, data):
    """
    The user's subscription of `data["endpoint"]`, or None; ValidationError when it names none.
    Read from the database written to: a replica behind it would say "not held" of one just
    made, and the browser would drop it.
    """
    endpoint = _named_endpoint(data, _("Send the endpoint of the subscription to look for."))
    subscriptions = PushSubscription.objects.using(router.db_for_write(PushSubscription))
    return subscriptions.filter(user_id=user.pk, endpoint=endpoint).first()


def unsubscribe(user, data):
    """Forget the user's subscription of `data["endpoint"]`; ValidationError when it names none."""
    endpoint = _named_endpoint(data, _("Send the endpoint of the subscription to remove."))
    PushSubscription.objects.filter(user_id=user.pk, endpoint=endpoint).delete()


def record(delivered, failed, gone):
    """What pushing did, as lists of (subscription id, endpoint): when each last worked or failed; gone ones deleted."""
    now = timezone.now()
    for pairs, change in [(delivered, {"last_success_at": now}), (failed, {"last_failure_at": now})]:
        if pairs:
            PushSubscription.objects.filter(pk__in=[pk for pk, _ in pairs]).update(**change)
    for pk, endpoint in gone:  # the push service said the endpoint is dead (404 or 410)
        PushSubscription.objects.filter(pk=pk, endpoint=endpoint).delete()
