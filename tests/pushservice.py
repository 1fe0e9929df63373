"""
A push service for the tests: a real HTTP server on 127.0.0.1 that takes Web Push messages as
FCM or Mozilla's autopush do, and a browser's side of a subscription.

Device is what a browser holds for one subscription: an ECDH P-256 key pair and a 16-byte auth
secret (its PushSubscription.toJSON() is what the site stores). PushService records each POST,
decrypts its aes128gcm body with the device's keys (http_ece, RFC 8291) and checks its VAPID
token (RFC 8292) against the site's public key with cryptography, independently of py-vapid.
Tests make it answer with a status (and Retry-After) of their choice, per endpoint.
"""

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """A browser's subscription keys, and its endpoint at a push service."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))

    def to_json(self):
        """What PushSubscription.toJSON() gives the page."""
        public = self.private_key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": {"p256dh": b64url(public), "auth": b64url(self.auth_secret)}}

    def decrypt(self, body):
        return http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth_secret, version="aes128gcm")


@dataclass
class Received:
    """One POST the push service took."""

    path: str
    headers: dict  # names in lower case
    body: bytes
    status: int
    at: float


def verify_vapid(authorization, public_key, audience):
    """The claims of a `vapid t=<JWT>,k=<key>` header, once its key is `public_key` and its ES256 signature checks."""
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid", authorization
    parts = dict(param.split("=", 1) for param in params.split(","))
    assert parts["k"] == public_key
    header, claims, signature = parts["t"].split(".")
    assert json.loads(b64url_decode(header)) == {"typ": "JWT", "alg": "ES256"}
    raw = b64url_decode(signature)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(public_key))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("The VAPID token's signature does not check with the site's public key") from None
    claims = json.loads(b64url_decode(claims))
    assert claims["aud"] == audience
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    return claims


class PushService:
    """The HTTP server; respond() scripts the answers to one endpoint (else 201)."""

    def __init__(self):
        self.received = []
        self.scripts = {}
        self.arrived = threading.Condition()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with service.arrived:
                    script = service.scripts.get(self.path) or []
                    status, retry_after, delay = script.pop(0) if script else (201, None, 0)
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    service.received.append(Received(self.path, headers, body, status, time.monotonic()))
                    service.arrived.notify_all()
                time.sleep(delay)
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", str(retry_after))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def device(self, name):
        return Device(f"{self.origin}/push/{name}")

    def respond(self, path, answers):
        """The next answers to POSTs to `path`: (status, Retry-After or None[, seconds to wait before answering])."""
        with self.arrived:
            self.scripts[path] = [(*answer, 0)[:3] for answer in answers]

    def to(self, device):
        """What arrived for one device."""
        path = device.endpoint[len(self.origin):]
        with self.arrived:
            return [each for each in self.received if each.path == path]

    def wait_for(self, device, count, timeout=10.0):
        """What arrived for `device` once it is at least `count` POSTs (AssertionError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        with self.arrived:  # a reentrant lock: to() takes it again
            while len(self.to(device)) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.to(device))} push(es) for {device.endpoint}, not {count}"
                self.arrived.wait(left)
            return self.to(device)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
