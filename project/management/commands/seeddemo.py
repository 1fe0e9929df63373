"""
`python manage.py seeddemo`: create (or reset) the demo users and print their credentials, and
where two of them see each other on the same object (presence on the admin's change form).
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

DEMO_USERS = [
    # username, password, is_superuser, is_staff, in group Support, what they can do
    ("admin", "admin-demo-pw", True, True, False, "superuser: edits anything in the admin"),
    ("alice", "alice-demo-pw", False, True, True, "staff in group Support (may view users and groups): sees their admin edits"),
    ("bob", "bob-demo-pw", False, False, False, "a plain user: sees only his own inbox and announcements"),
]


class Command(BaseCommand):
    help = "Creates the demo users (admin, alice, bob) with known passwords; safe to run again."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("seeddemo resets passwords to published ones: it runs only with DEBUG on.")
        support, _ = Group.objects.get_or_create(name="Support")
        support.permissions.set(Permission.objects.filter(content_type__app_label="auth", codename__in=["view_user", "view_group"]))
        User = get_user_model()
        for username, password, is_superuser, is_staff, in_support, _ in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.is_superuser, user.is_staff, user.is_active = is_superuser, is_staff, True
            user.set_password(password)
            user.save()
            user.groups.set([support] if in_support else [])
        self.stdout.write("Demo users (username / password):")
        for username, password, *_, role in DEMO_USERS:
            self.stdout.write(f"  {username:<6} / {password:<14} {role}")
        bob = User.objects.get(username="bob")
        self.stdout.write(
            f"Presence: open {reverse('admin:auth_user_change', args=[bob.pk])} as admin in one browser and as alice in "
            "another: each sees the other there, and alice sees admin editing once he changes a field."
        )
