"""
HTTP endpoints of the grouped feed (grouped.py): the feed with each burst as one item
(`?grouped=1` on the list), a group's members, and marking a group read. JSON as views.py answers.
"""

from urllib.parse import urlencode

from django.http import JsonResponse

from . import feed, grouped
from .group_titles import group_title
from .publishing import timestamp
from .views import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    BadParameter,
    api_view,
    event_item,
    int_parameter,
    json_error,
    language_and_mutes,
)


def _page_parameters(request):
    return (
        int_parameter(request, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
        int_parameter(request, "before", None, 1),
    )


def _next_url(request, limit, before, **extra):
    return f"{request.path}?{urlencode({**extra, 'limit': limit, 'before': before})}"


def _group_item(group, language, mutes):
    """A group of one is its event; a larger one is summed up, with its newest member as `latest`."""
    latest = event_item(group.latest, language, mutes)
    if group.count == 1:
        return {"type": "event", **latest}
    actor = latest["actor"]
    return {
        "type": "group",
        "group": group.id,
        "kind": latest["kind"],
        "actor": actor,
        "model": group.latest.target_type,
        "count": group.count,
        "unread_count": group.unread_count,
        "read": group.unread_count == 0,
        "muted": latest["muted"],
        "first_at": timestamp(group.first_at),
        "last_at": timestamp(group.last_at),
        "title": group_title(latest["kind"], actor and actor["username"], group.latest.target_type, group.count, language),
        "latest": latest,
    }


def grouped_list(request, limit, before):
    """The `?grouped=1` list: groups newest first; `before` is a group id."""
    groups, unread = grouped.page(request.user, limit, before)
    next_url = None
    if len(groups) > limit:
        groups = groups[:limit]
        next_url = _next_url(request, limit, groups[-1].id, grouped=1)
    language, mutes = language_and_mutes(request.user)
    return JsonResponse(
        {"results": [_group_item(group, language, mutes) for group in groups], "unread_count": unread, "next": next_url}
    )


@api_view("GET")
def group_members(request, group_id):
    """
    A group as the grouped list shows it (`summary`: what a client refreshes a growing group
    from), and its members the user sees, newest first, `limit` at a time, below the event `before`.
    """
    try:
        limit, before = _page_parameters(request)
    except BadParameter as error:
        return json_error(400, "bad_request", str(error))
    group = grouped.summary(request.user, group_id)
    if group is None:
        return json_error(404, "not_found", f"No group {group_id} for you.")
    events = grouped.members(request.user, group_id, limit, before)
    next_url = None
    if len(events) > limit:
        events = events[:limit]
        next_url = _next_url(request, limit, events[-1].pk)
    language, mutes = language_and_mutes(request.user)
    return JsonResponse(
        {
            "group": group_id,
            "summary": _group_item(group, language, mutes),
            "results": [event_item(event, language, mutes) for event in events],
            "next": next_url,
        }
    )


@api_view("POST")
def mark_group_read(request, group_id):
    """Mark every member of the group read; its sockets get one `read` frame with their ids."""
    ids = grouped.mark_read(request.user, group_id)
    if ids is None:
        return json_error(404, "not_found", f"No group {group_id} for you.")
    return JsonResponse({"group": group_id, "ids": ids, "read": True, "unread_count": feed.unread_count(request.user)})
