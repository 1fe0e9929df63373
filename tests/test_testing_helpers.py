"""
notifications.testing's capture: what it records in a test that never commits and in one that
does, what a rollback leaves out, and what its assertions say when they fail.
"""

import pytest
from django.db import transaction

from notifications import announce, notify
from notifications.testing import captured_events

from .factories import make_group, make_user


@pytest.mark.django_db
def test_a_test_that_never_commits_sees_the_waiting_events_without_sending_them(stream):
    user, group = make_user(), make_group()
    member = make_user("member", groups=[group])
    with captured_events() as published:
        notify(user, "direct", data={"order": 5, "total": 12})
        notify(group, "to the group")
        with transaction.atomic():
            notify(user, "rolled back")
            transaction.set_rollback(True)
        assert [each.title for each in published] == ["direct", "to the group"]  # looked at: as if committed
        announce("to everyone")
    assert [each.title for each in published] == ["direct", "to the group", "to everyone"]
    assert stream.new_events() == []  # nothing reached Redis

    published.assert_published(title="direct", to=user, data={"order": 5})
    published.assert_published(title="to the group", to=member)
    published.assert_published(title="to the group", to=group, topic="inbox")
    published.assert_published(kind="announcement", to=member, count=1)
    published.assert_not_published(title="rolled back")
    assert not published[0].addressed_to(member) and published[2].addressed_to(user)


@pytest.mark.django_db
def test_nothing_is_looked_at_inside_the_codes_own_transaction():
    user = make_user()
    with captured_events() as published:
        with transaction.atomic():
            notify(user, "not committed yet")
            assert len(published) == 0
        assert len(published) == 1


@pytest.mark.django_db(transaction=True)
def test_a_committing_test_records_what_is_published_to_redis(stream):
    user = make_user()
    with captured_events() as published:
        event = notify(user, "committed")
    assert [each.id for each in published] == [event.pk]
    assert [each["id"] for each in stream.new_events()] == [event.pk]
    assert published[0].payload == stream.new_events()[0]


@pytest.mark.django_db
def test_failed_assertions_list_what_was_published():
    user = make_user()
    with captured_events() as published:
        notify(user, "one")
    with pytest.raises(AssertionError, match=r"(?s)matching title='two', found 0\..*notification 'one'"):
        published.assert_published(title="two")
    with pytest.raises(AssertionError, match="Expected 2 event"):
        published.assert_published(title="one", count=2)
    with pytest.raises(AssertionError, match="Expected no event matching anything, found 1"):
        published.assert_not_published()
    with pytest.raises(TypeError, match="Unknown criterion 'colour'"):
        published.filter(colour="red")
