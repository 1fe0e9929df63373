"""
`python manage.py generate_vapid_keys`: a new VAPID key pair for Web Push, printed as the lines
to put in the settings (or, with --env, in an environment file).

A site makes its pair once and keeps it: browsers subscribe to the public key, so a new pair
leaves every device subscribed to the old one unreachable until it subscribes again.
"""

from django.core.management.base import BaseCommand

from notifications.webpush import vapid


class Command(BaseCommand):
    help = "Prints a new VAPID key pair for Web Push, as settings lines."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--subject", default="mailto:ops@example.com", help="The contact push services may write to.")
        parser.add_argument("--env", action="store_true", help="Print NAME=value lines for an environment file.")

    def handle(self, *args, subject, env, **options):
        private, public = vapid.generate()
        values = {
            "NOTIFICATIONS_VAPID_PUBLIC_KEY": public,
            "NOTIFICATIONS_VAPID_PRIVATE_KEY": private,
            "NOTIFICATIONS_VAPID_SUBJECT": subject,
        }
        if not env:
            self.stdout.write("# Web Push: keep the private key secret, and keep the pair: browsers subscribe to the public key.")
        for name, value in values.items():
            self.stdout.write(f"{name}={value}" if env else f"{name} = {value!r}")
