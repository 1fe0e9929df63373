"""
A real SMTP server for the digest tests (aiosmtpd, in a thread of the test process, on a free
port of 127.0.0.1): what Django's SMTP backend talks to, as it would to a site's mail server.

The Mailbox keeps every message it received, parsed, the moment its data has arrived (before
it answers 250), as a mail system that got a message keeps it even when its answer never
reaches the sender. It can refuse recipients (550 at RCPT), slow each message down, and hold
the message to an address until released, so a test can kill the sender while the server has
the message and has not yet answered.
"""

import asyncio
import email
import threading
from email import policy

from aiosmtpd.controller import Controller

from notifications.testing.servers import free_port

WAIT = 15.0  # seconds any wait here gives up after


class Mailbox:
    def __init__(self):
        self.messages = []
        self.peers = []  # the client address and port each message came from
        self.refused = set()
        self.delay = 0.0
        self.hold_for = None
        self.held = threading.Event()  # set once the held message has arrived
        self.release = threading.Event()
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)
            self.peers.append(session.peer)
        if self.hold_for is not None and self.hold_for in envelope.rcpt_tos:
            self.held.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, WAIT)
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"

    def to(self, address):
        """The messages received for `address`, oldest first."""
        with self._lock:
            return [message for message in self.messages if message["To"] == address]


class SMTPServer:
    def __init__(self):
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc_info):
        self.mailbox.release.set()
        self.controller.stop()

    def settings(self):
        """The settings that make Django's email backend send here."""
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": self.port,
            "EMAIL_TIMEOUT": WAIT,
            "EMAIL_USE_TLS": False,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
        }
