"""
The app's translation catalogs (French, German and Arabic): each .po compiled to the .mo
committed next to it (the wheel ships the .mo, so a site needs no gettext tools), and each
complete for every string the app's code and templates mark, as `makemessages` finds them today.
"""

import gettext
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci import system_command

APP_DIR = Path(__file__).resolve().parent.parent / "notifications"
LOCALE_DIR = APP_DIR / "locale"
LANGUAGES = ["fr", "de", "ar"]


@pytest.fixture(scope="module")
def msgfmt():
    return system_command("msgfmt", "gettext", "The translation catalog tests")


def compiled(msgfmt, po, directory):
    """The catalog msgfmt makes of `po` (checking its format strings), as Python's gettext reads it."""
    mo = directory / f"{po.parent.parent.name}.mo"
    result = subprocess.run([msgfmt, "--check", "--statistics", "-o", mo, po], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with mo.open("rb") as file:
        return gettext.GNUTranslations(file), result.stderr


def catalog_of(mo):
    with mo.open("rb") as file:
        translations = gettext.GNUTranslations(file)
    return translations._catalog, translations.info()


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_po_is_compiled_to_its_committed_mo(msgfmt, tmp_path, language):
    po = LOCALE_DIR / language / "LC_MESSAGES" / "django.po"
    fresh, _stats = compiled(msgfmt, po, tmp_path)
    assert (fresh._catalog, fresh.info()) == catalog_of(po.with_suffix(".mo")), f"run compilemessages: {po} changed since its .mo"


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_catalog_translates_every_string_of_the_app(msgfmt, tmp_path, language):
    # makemessages on a copy of the app: today's strings merged into the committed catalog.
    copy = tmp_path / "notifications"
    shutil.copytree(APP_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "PYTHONPATH": str(APP_DIR.parent)}
    made = subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", language, "--add-location=file"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=120,
    )
    assert made.returncode == 0, made.stderr
    po = copy / "locale" / language / "LC_MESSAGES" / "django.po"
    _fresh, statistics = compiled(msgfmt, po, tmp_path)
    assert "untranslated" not in statistics and "fuzzy" not in statistics, f"{language}: {statistics.strip()}"
