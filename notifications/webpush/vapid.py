"""
The site's VAPID identity (RFC 8292): the key pair push services know the site by, and the
contact they may write to.

Keys are written as web-push tools write them: base64url without padding, the raw 32-byte
private key and the 65-byte uncompressed public point (the form browsers take as
`applicationServerKey`). problems() says what is wrong with the settings, for the system checks;
signer() is what sending.py signs with.
"""

import base64
import re
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid

from ..conf import app_settings

BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
# What push services accept as a subject: a mailto: address, or an https: URL.
SUBJECT = re.compile(r"mailto:[^@\s]+@[^@\s]+|https://[^/\s]+(/\S*)?", re.IGNORECASE)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    """The bytes of a base64url string (padding optional); ValueError when it is not one."""
    if not isinstance(text, str) or not BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_point(key):
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def generate():
    """A new key pair: (private key, public key), both base64url."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big")), b64url(public_point(key.public_key()))


def public_key_of(private_key):
    """The base64url public key of a base64url private key; ValueError when it is not one."""
    raw = b64url_decode(private_key)
    if len(raw) != 32:
        raise ValueError(f"it is {len(raw)} bytes long, not 32")
    return b64url(public_point(ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1()).public_key()))


def enabled():
    """Whether pushing is on: both keys are set (checks E030 and E031 say whether they are right)."""
    return bool(app_settings.NOTIFICATIONS_VAPID_PUBLIC_KEY and app_settings.NOTIFICATIONS_VAPID_PRIVATE_KEY)


def key_problem():
    """What is wrong with the key pair settings, or None (none set is right: push is off)."""
    public, private = app_settings.NOTIFICATIONS_VAPID_PUBLIC_KEY, app_settings.NOTIFICATIONS_VAPID_PRIVATE_KEY
    if not public and not private:
        return None
    if not public or not private:
        missing = "NOTIFICATIONS_VAPID_PUBLIC_KEY" if not public else "NOTIFICATIONS_VAPID_PRIVATE_KEY"
        return f"{missing} is not set, but the other VAPID key is"
    try:
        derived = public_key_of(private)
    except ValueError as error:
        return f"NOTIFICATIONS_VAPID_PRIVATE_KEY is not a base64url P-256 private key ({error})"
    if public.rstrip("=") != derived:
        return "NOTIFICATIONS_VAPID_PUBLIC_KEY is not the public key of NOTIFICATIONS_VAPID_PRIVATE_KEY"
    return None


def subject_problem():
    """What is wrong with NOTIFICATIONS_VAPID_SUBJECT while push is on, or None."""
    subject = app_settings.NOTIFICATIONS_VAPID_SUBJECT
    if not enabled() or (isinstance(subject, str) and SUBJECT.fullmatch(subject)):
        return None
    if not subject:
        return "NOTIFICATIONS_VAPID_SUBJECT is not set: push services want to know whom to contact"
    return f"NOTIFICATIONS_VAPID_SUBJECT {subject!r} is not a mailto: address or an https: URL"


def public_key():
    """The public key browsers subscribe with, or "" while push is off."""
    return app_settings.NOTIFICATIONS_VAPID_PUBLIC_KEY.rstrip("=") if enabled() else ""


@lru_cache(maxsize=2)
def _signer(private_key):
    return Vapid.from_raw(private_key.rstrip("=").encode())


def signer():
    """The py_vapid signer of the configured private key."""
    return _signer(app_settings.NOTIFICATIONS_VAPID_PRIVATE_KEY)


def claims():
    """The claims of a VAPID token (pywebpush adds the audience, the push service's origin, and the expiry)."""
    return {"sub": app_settings.NOTIFICATIONS_VAPID_SUBJECT}
