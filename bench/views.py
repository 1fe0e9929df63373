"""
The request bench/notify_cost.py times: a logged-in POST whose view calls notify() or announce()
(or nothing, the baseline), so the difference is what publishing adds to a request.

Modes: "none"; "user" (the requesting user); "group-<pk>" (a group, by pk: no query to fetch
it, so only notify()'s own queries count); "users-<pk>" (the members of that group as a user
queryset: one INSERT ... SELECT); "announce" (every user).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.http import JsonResponse
from django.views.decorators.http import require_POST

from notifications import announce, notify


@require_POST
def notify_view(request, mode):
    if not request.user.is_authenticated:
        return JsonResponse({"error": "not_authenticated"}, status=401)
    kind, _, pk = mode.partition("-")
    title = "Benchmark notification"
    event = None
    if kind == "user":
        event = notify(request.user, title, body="A request notifies its user.")
    elif kind == "group":
        event = notify(Group(pk=int(pk)), title, body="A request notifies a group.")
    elif kind == "users":
        event = notify(get_user_model().objects.filter(groups=int(pk)), title, body="A request notifies users.")
    elif kind == "announce":
        event = announce(title, body="A request announces to everyone.")
    elif kind != "none":
        return JsonResponse({"error": "bad_request"}, status=400)
    return JsonResponse({"id": event.pk if event else None})
