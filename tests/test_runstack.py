"""The demo's development settings (manage.py runstack): a site address, and a VAPID pair made once and kept."""

from notifications.webpush import vapid
from project.management.commands.runstack import DEMO_VAPID_FILE, demo_settings


def test_the_demo_makes_a_vapid_pair_once_and_keeps_it(settings, tmp_path):
    settings.BASE_DIR = tmp_path
    settings.NOTIFICATIONS_VAPID_PUBLIC_KEY = settings.NOTIFICATIONS_VAPID_PRIVATE_KEY = ""
    first = demo_settings("127.0.0.1:8000")
    assert first["NOTIFICATIONS_SITE_URL"] == "http://127.0.0.1:8000"
    assert vapid.public_key_of(first["NOTIFICATIONS_VAPID_PRIVATE_KEY"]) == first["NOTIFICATIONS_VAPID_PUBLIC_KEY"]
    assert (tmp_path / DEMO_VAPID_FILE).stat().st_mode & 0o777 == 0o600
    assert demo_settings("127.0.0.1:8000") == first  # browsers subscribed to the first pair stay reachable


def test_the_demo_leaves_keys_a_site_set_alone(settings, tmp_path):
    settings.BASE_DIR = tmp_path
    private, public = vapid.generate()
    settings.NOTIFICATIONS_VAPID_PUBLIC_KEY, settings.NOTIFICATIONS_VAPID_PRIVATE_KEY = public, private
    assert "NOTIFICATIONS_VAPID_PUBLIC_KEY" not in demo_settings("127.0.0.1:8000")
    assert not (tmp_path / DEMO_VAPID_FILE).exists()
