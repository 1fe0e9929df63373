"""
The widget's catalog: what `{% notifications_widget %}` puts in `data-catalog` for the request's
language (notifications/widget_strings.py), and i18n.js's reading of gettext plural rules,
which must pick the same form as gettext itself for every count (run in Node, as a module).
"""

import gettext
import json
import subprocess

import pytest
from django.utils import translation

from notifications import widget_strings
from notifications.templatetags.notifications import notifications_widget

from .ci import system_command
from .factories import make_user
from .relay import BASE_DIR

I18N_JS = BASE_DIR / "notifications" / "static" / "notifications" / "i18n.js"
RULES = [
    "(n != 1)",
    "(n > 1)",
    "n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 : n%100>=11 && n%100<=99 ? 4 : 5",
    "(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2)",
    "(n==1) ? 0 : (n>=2 && n<=4) ? 1 : 2",
    "!(n == 1)",
    "0",
]
COUNTS = list(range(0, 300)) + [1000, 1001, 1011, 1000000]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "open_", "unread"),
    [("fr", "Ouvrir", "Notifications, 2 non lues"), ("de", "Öffnen", "Benachrichtigungen, 2 ungelesen"), ("en", "Open", "Notifications, 2 unread")],
)
def test_the_tag_renders_the_widgets_catalog_in_the_active_language(language, open_, unread):
    with translation.override(language):
        config = dict(notifications_widget({"user": make_user(), "csrf_token": "t"})["config"])
    catalog = json.loads(config["catalog"])
    assert catalog["language"] == language
    assert catalog["messages"]["Open"] == open_
    forms = catalog["messages"]["Notifications, %(count)s unread"]
    assert forms[gettext.c2py(catalog["plural"])(2)] % {"count": 2} == unread


@pytest.mark.django_db
def test_the_service_worker_is_registered_with_its_fallback_title_in_the_active_language():
    with translation.override("de"):
        config = dict(notifications_widget({"user": make_user(), "csrf_token": "t"})["config"])
    assert config["service-worker-url"] == "/static/notifications/sw.js?title=Neue+Benachrichtigung"


def test_each_languages_catalog_is_made_once_and_again_when_the_sites_translations_change(tmp_path, settings):
    with translation.override("fr"):
        made = widget_strings.catalog_json()
        assert widget_strings.catalog_json() is made  # not made again for the next page
        assert json.loads(made)["messages"]["Open"] == "Ouvrir"
    with translation.override("de"):
        assert json.loads(widget_strings.catalog_json())["messages"]["Open"] == "Öffnen"

    # The site's own catalog (LOCALE_PATHS, which Django prefers) says it otherwise.
    messages = tmp_path / "fr" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    (messages / "django.po").write_text('msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "Open"\nmsgstr "Voir"\n')
    msgfmt = system_command("msgfmt", "gettext", "The catalog's cache test")
    subprocess.run([msgfmt, "-o", messages / "django.mo", messages / "django.po"], check=True, timeout=60)
    settings.LOCALE_PATHS = [str(tmp_path)]
    with translation.override("fr"):
        assert json.loads(widget_strings.catalog_json())["messages"]["Open"] == "Voir"


def test_arabic_sends_its_six_forms_with_its_rule():
    with translation.override("ar"):
        catalog = widget_strings.catalog()
    assert len(catalog["messages"]["Notifications, %(count)s unread"]) == 6
    assert gettext.c2py(catalog["plural"])(11) == 4


@pytest.fixture(scope="module")
def node():
    return system_command("node", "nodejs", "The plural rule tests")


def js_plural_forms(node, rules, counts):
    """{rule: [form index for each count]} as i18n.js's pluralRule computes them."""
    script = f"""
        import {{ pluralRule }} from {json.dumps(I18N_JS.as_uri())};
        const rules = {json.dumps(rules)}, counts = {json.dumps(counts)};
        console.log(JSON.stringify(Object.fromEntries(rules.map((rule) => [rule, counts.map(pluralRule(rule))]))));
    """
    done = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_plural_rules_pick_gettexts_form_for_every_count(node):
    computed, _errors = js_plural_forms(node, RULES, COUNTS)
    for rule in RULES:
        choose = gettext.c2py(rule)
        assert computed[rule] == [choose(n) for n in COUNTS], rule


def test_a_rule_it_cannot_read_gives_englishs_and_runs_nothing(node):
    rules = ["n ? 1", "alert(1)", "globalThis.x=1", "n == 1 ; process.exit(3)", ""]
    computed, errors = js_plural_forms(node, rules, [0, 1, 2])
    assert computed == {rule: [1, 0, 1] for rule in rules}
    assert errors.count("cannot read") == len(rules)
