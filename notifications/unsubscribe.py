"""
The one-click unsubscribe link of digest emails (RFC 8058), which works without logging in.

GET shows a page with one button; the button, like a mail provider acting on the
`List-Unsubscribe-Post` header, POSTs `List-Unsubscribe=One-Click` to the same URL, which turns
the user's digest off (preferences.update: their other choices stay). A GET never changes
anything, since link scanners and previews follow links in emails. The token in the URL is
the credential (digest_mail.unsubscribe_token, signed), so there is no CSRF check: a mail
provider's POST carries no cookie and no CSRF token, and a forged request could only do what
the link's holder can do anyway. A token that fails its signature gets a 400 page.
"""

from django.conf import settings
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import preferences
from .conf import app_settings
from .digest_mail import ONE_CLICK, site_url_problem, user_of_token
from .models import DigestFrequency

TEMPLATE = "notifications/unsubscribe.html"
FIELD, VALUE = ONE_CLICK.split("=")


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def digest_unsubscribe(request, token):
    user = user_of_token(token)
    if user is None:
        return render(request, TEMPLATE, {"state": "invalid"}, status=400)
    language = preferences.choices_for(user).language or settings.LANGUAGE_CODE
    context = {"state": "confirm", "field": FIELD, "value": VALUE, "site_url": _site_url()}
    with translation.override(language):
        if request.method == "POST":
            if request.POST.get(FIELD) != VALUE:
                return render(request, TEMPLATE, {**context, "state": "bad_request"}, status=400)
            preferences.update(user, {"digest": DigestFrequency.OFF.value}, partial=True)
            context["state"] = "done"
        return render(request, TEMPLATE, context)


def _site_url():
    return "" if site_url_problem() else app_settings.NOTIFICATIONS_SITE_URL
