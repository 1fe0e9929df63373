"""The project's settings, and /examples/: docs/examples in pages of the site (tests/browser/examples_urls.py)."""

from project.settings import *  # noqa: F401,F403

ROOT_URLCONF = "tests.browser.examples_urls"
