"""
The project's settings for `send_notification_digests` run as a process by tests/test_digests.py:
email goes to the test's SMTP server (DIGEST_TEST_SMTP_PORT on 127.0.0.1), links name
DIGEST_TEST_SITE_URL.
"""

import os

from project.settings import *  # noqa: F401,F403

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ["DIGEST_TEST_SMTP_PORT"])
EMAIL_TIMEOUT = 15
NOTIFICATIONS_SITE_URL = os.environ["DIGEST_TEST_SITE_URL"]
