"""
What a digest email says and how it is addressed: text and HTML from templates a site can
override, in the reader's language, with absolute links and a signed one-click unsubscribe link.

Templates (a site overrides them by putting its own at the same paths in a template directory
listed before the app's):

    notifications/email/digest_subject.txt   one line (whitespace is folded)
    notifications/email/digest.txt           the plain-text part
    notifications/email/digest.html          the HTML part

Their context: `user`, `items` (each with `title`, `body` (and its `body_lines`), `url`
(absolute, "" when the event has no link on this site), `actor`, `created_at`, `kind`), `count`
(how many notifications the digest took in), `more` (how many of them are not listed),
`frequency` (its label), `site_url`, `site_name` and `unsubscribe_url`.

The unsubscribe link carries the user's id signed with the site's SECRET_KEY (django.core.signing,
a salt of its own), so it works without logging in and cannot be made for another user. It has
no expiry: RFC 8058 expects an old email's link to keep working. It sets the user's digest to
"off" and nothing else.
"""

from email.utils import make_msgid
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .links import on_site
from .models import DigestFrequency

UNSUBSCRIBE_SALT = "notifications.digests.unsubscribe"
# RFC 8058: the body a mail provider POSTs to the List-Unsubscribe URL, and what the header
# announcing it says.
ONE_CLICK = "List-Unsubscribe=One-Click"
TEMPLATES = {
    "subject": "notifications/email/digest_subject.txt",
    "text": "notifications/email/digest.txt",
    "html": "notifications/email/digest.html",
}


class SiteURLError(ValueError):
    """NOTIFICATIONS_SITE_URL cannot make the links of an email."""


def site_url_problem():
    """What is wrong with NOTIFICATIONS_SITE_URL for emails, or None."""
    url = app_settings.NOTIFICATIONS_SITE_URL
    if not url:
        return _("NOTIFICATIONS_SITE_URL is not set: emails need the site's address for their links.")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
        return _("NOTIFICATIONS_SITE_URL %(url)r is not the address of a site, such as https://www.example.com.") % {"url": url}
    return None


def site_url():
    """NOTIFICATIONS_SITE_URL without its trailing slash; SiteURLError when it cannot be used."""
    problem = site_url_problem()
    if problem:
        raise SiteURLError(problem)
    return app_settings.NOTIFICATIONS_SITE_URL.rstrip("/")


def absolute_link(url):
    """An event's link, absolute, if it leads into this site (links.py); "" otherwise."""
    url = (url or "").strip()
    if not url or not on_site(url):
        return ""
    return url if urlsplit(url).netloc else site_url() + url


def unsubscribe_token(user_id):
    return signing.dumps(user_id, salt=UNSUBSCRIBE_SALT)


def user_of_token(token):
    """The user an unsubscribe token was made for, or None (forged, altered, or no such user)."""
    try:
        user_id = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    return get_user_model()._default_manager.filter(pk=user_id).first()


def unsubscribe_url(user_id):
    return site_url() + reverse("notifications:digest-unsubscribe", args=[unsubscribe_token(user_id)])


def new_message_id():
    """A Message-ID for a new digest, under the site's domain; stored, so a resent copy carries it again."""
    return make_msgid("digest", domain=urlsplit(site_url()).hostname)


def item(event):
    return {
        "title": event.title,
        "body": event.body,
        "body_lines": event.body.splitlines(),  # the text part indents each line under its title
        "url": absolute_link(event.url),
        "actor": event.actor,
        "created_at": event.created_at,
        "kind": event.kind,
    }


class DigestEmail(EmailMultiAlternatives):
    """
    An email whose header lines are not folded before RFC 5322's limit (998 characters): the
    email package's default folds at 78, which turns a long List-Unsubscribe URL (one word)
    into encoded-words that mail providers do not read as a URL.
    """

    def message(self, *args, **kwargs):
        message = super().message(*args, **kwargs)
        message.policy = message.policy.clone(max_line_length=998)
        return message


def build_message(digest, user, events, frequency, language):
    """
    The EmailMultiAlternatives of `digest` (a models.Digest) to `user`, listing `events` (those
    of digest.event_ids still stored), rendered in `language`.
    """
    base = site_url()
    unsubscribe = unsubscribe_url(user.pk)
    items = [item(event) for event in events]
    context = {
        "user": user,
        "items": items,
        "count": digest.total,
        "more": max(digest.total - len(items), 0),
        "frequency": DigestFrequency(frequency).label if frequency in DigestFrequency.values else "",
        "site_url": base + "/",
        "site_name": urlsplit(base).hostname,
        "unsubscribe_url": unsubscribe,
    }
    with translation.override(language):
        subject = " ".join(render_to_string(TEMPLATES["subject"], context).split())
        text = render_to_string(TEMPLATES["text"], context)
        html = render_to_string(TEMPLATES["html"], context)
    message = DigestEmail(
        subject,
        text,
        app_settings.NOTIFICATIONS_DIGEST_FROM_EMAIL,  # None: DEFAULT_FROM_EMAIL
        [getattr(user, user.get_email_field_name())],
        headers={
            "Message-ID": digest.message_id,
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": ONE_CLICK,
            # RFC 3834: made by a program, so auto-responders do not answer it.
            "Auto-Submitted": "auto-generated",
        },
    )
    message.attach_alternative(html, "text/html")
    return message
