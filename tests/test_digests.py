"""
Email digests (notifications.digests), sent through a real SMTP server the tests start
(tests/smtp_server.py) and read back as a mail client would: headers, both parts, links.
Time is the runs' `now`, so due times are tested without waiting.
"""

import asyncio
import logging
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import announce, digests, mark_all_read, mark_read, notify, online, preferences
from notifications.conf import app_settings
from notifications.models import Digest, DigestState, Kind
from notifications.digest_mail import unsubscribe_token

from .aio import call
from .factories import login, make_group, make_user
from .relay import BASE_DIR, free_port, server_env
from .smtp_server import SMTPServer

SITE = "https://shop.example.com"


@pytest.fixture
def smtp():
    with SMTPServer() as server, override_settings(**server.settings(), NOTIFICATIONS_SITE_URL=SITE):
        yield server


def subscriber(frequency="daily", language=None, first_name="", **kwargs):
    user = make_user("reader", **kwargs)
    user.email = f"{user.username}@example.com"
    user.first_name = first_name
    user.save(update_fields=["email", "first_name"])
    if frequency is not None or language is not None:
        preferences.update(user, {"digest": frequency, "language": language}, partial=True)
    return user


def soon(minutes=2):
    """A moment just past SETTLE after now: events made now are settled, and inside an hour's look-back."""
    return timezone.now() + timedelta(minutes=minutes)


def run(now, **kwargs):
    return digests.Run(now=now, **kwargs).run()


def text_of(message):
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def html_of(message):
    return message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")


def titles(message):
    """The notification titles a digest lists (its text part's bullets)."""
    return re.findall(r"^\* (.+)$", text_of(message), flags=re.MULTILINE)


@pytest.mark.django_db
def test_a_digest_is_a_complete_email_whose_unsubscribe_link_works(smtp):
    reader = subscriber(first_name="Ada")
    team = make_group(members=[reader])
    notify(reader, "Order <5> shipped & paid", body="It left the warehouse.\nTracking: 1Z999", url="/orders/5/")
    notify(team, "Team meeting moved")
    outcome = run(soon())

    assert outcome.sent == 1 and not outcome.failed
    [message] = smtp.mailbox.to(reader.email)
    digest = Digest.objects.get(user=reader)
    assert digest.sent_at is not None and digest.total == 2
    assert message["To"] == reader.email and message["From"] == django_settings.DEFAULT_FROM_EMAIL
    assert message["Message-ID"] == digest.message_id and message["Message-ID"].endswith("@shop.example.com>")
    assert message["Subject"] == "2 new notifications on shop.example.com"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = re.fullmatch(r"<(.+)>", message["List-Unsubscribe"]).group(1)
    assert unsubscribe.startswith(f"{SITE}/notifications/unsubscribe/")

    text, html = text_of(message), html_of(message)
    assert "Hello Ada," in text and titles(message) == ["Team meeting moved", "Order <5> shipped & paid"]
    assert f"{SITE}/orders/5/" in text and "\n  It left the warehouse.\n  Tracking: 1Z999\n" in text and unsubscribe in text
    assert "Order &lt;5&gt; shipped &amp; paid</a>" in html and "<5>" not in html
    assert f'<a href="{SITE}/orders/5/"' in html and f'href="{SITE}/"' in html and f'href="{unsubscribe}"' in html
    assert '<html lang="en-us">' in html
    # The site's link leads the reader to its home page.
    site_link = re.search(r'<a href="([^"]+)"[^>]*>See them all', html).group(1)
    assert site_link == f"{SITE}/" and login(reader).client.get(urlsplit(site_link).path, secure=True).status_code == 200

    # The link, followed as a person or a mail provider would (no login): a GET changes nothing.
    browser = Client()
    path = urlsplit(unsubscribe).path
    page = browser.get(path, secure=True)
    assert page.status_code == 200 and b'name="List-Unsubscribe" value="One-Click"' in page.content
    assert preferences.choices_for(reader).digest == "daily"
    assert browser.post(path, {}, secure=True).status_code == 400
    assert preferences.choices_for(reader).digest == "daily"
    done = browser.post(path, {"List-Unsubscribe": "One-Click"}, secure=True)
    assert done.status_code == 200 and b"no longer receive email digests" in done.content
    assert preferences.choices_for(reader).digest == "off"

    # Altered or forged tokens: a 400 page, nothing changed.
    other = subscriber()
    # The other user's id with the reader's signature: a token nobody signed.
    token = path.split("/")[-2]
    forged = path.replace(token, f"{unsubscribe_token(other.pk).split(':')[0]}:{token.split(':', 1)[1]}")
    for bad in (path[:-5] + "xxxx/", forged, "/notifications/unsubscribe/not-a-token/"):
        assert bad != path
        answer = browser.post(bad, {"List-Unsubscribe": "One-Click"}, secure=True)
        assert answer.status_code == 400 and b"not valid" in answer.content
    assert preferences.choices_for(other).digest == "daily"


@pytest.mark.django_db
def test_read_muted_object_and_others_events_are_left_out(smtp):
    reader = subscriber()
    preferences.update(reader, {"muted_kinds": ["invoice.due"], "muted_topics": ["model:auth.group"]}, partial=True)
    stranger = make_user("stranger")
    group = make_group()
    notify(reader, "Wanted")
    mark_read(reader, [notify(reader, "Read one by one").pk])
    notify(reader, "Muted by kind", kind="invoice.due")
    notify(reader, "Muted by topic", target=group)
    notify(reader, "An object event", kind=Kind.MODEL_UPDATED, target=group)
    notify(stranger, "Someone else's")
    notify(group, "A group the reader is not in")
    announce("For staff only", audience="staff")
    announce("For everyone")
    run(soon())
    [message] = smtp.mailbox.to(reader.email)
    assert titles(message) == ["For everyone", "Wanted"]
    # Read through the marker: no email at all, and nothing is sent twice.
    notify(reader, "Read by marker")
    mark_all_read(reader)
    outcome = run(soon() + timedelta(days=1))
    assert outcome.sent == 0 and outcome.empty == 1 and len(smtp.mailbox.to(reader.email)) == 1


@pytest.mark.django_db
def test_each_frequency_is_due_once_a_period(smtp):
    readers = {frequency: subscriber(frequency) for frequency in ("hourly", "daily", "weekly", "off")}
    start = soon()

    def new_round(when):
        for frequency, reader in readers.items():
            notify(reader, f"{frequency} at {when}")
        outcome = run(start + when)
        return {frequency for frequency, reader in readers.items() if any(f"at {when}" in text_of(m) for m in smtp.mailbox.to(reader.email))}, outcome

    assert new_round(timedelta(0))[0] == {"hourly", "daily", "weekly"}
    assert new_round(timedelta(minutes=30))[0] == set()
    # EARLY: a run a few minutes before the hour keeps an hourly rhythm.
    assert new_round(timedelta(minutes=56))[0] == {"hourly"}
    assert new_round(timedelta(hours=23, minutes=56))[0] == {"hourly", "daily"}
    # Nothing new: due, but no email.
    outcome = run(start + timedelta(days=1, hours=2))
    assert outcome.sent == 0 and outcome.empty == 1
    seen, _ = new_round(timedelta(days=7))
    assert seen == {"hourly", "daily", "weekly"}
    weekly = smtp.mailbox.to(readers["weekly"].email)
    # The weekly digest took in every round since its first, each once.
    assert [len(titles(message)) for message in weekly] == [1, 4]
    assert smtp.mailbox.to(readers["off"].email) == []


@pytest.mark.django_db
def test_a_first_digest_looks_back_one_period(smtp):
    reader = subscriber("hourly")
    notify(reader, "Old news")
    assert run(soon(minutes=61)).sent == 0
    notify(reader, "Fresh")
    run(soon(minutes=120))
    [message] = smtp.mailbox.to(reader.email)
    assert titles(message) == ["Fresh"]


@pytest.mark.django_db
def test_each_reader_gets_their_language(smtp, settings):
    french = subscriber(language="fr")
    default = subscriber()
    notify([french, default], "Commande expédiée")
    run(soon())
    [in_french] = smtp.mailbox.to(french.email)
    [in_english] = smtp.mailbox.to(default.email)
    assert in_french["Subject"] == "1 nouvelle notification sur shop.example.com"
    assert "Se désabonner" in html_of(in_french) and '<html lang="fr">' in html_of(in_french)
    assert "Vous avez 1 notification non lue" in text_of(in_french)
    assert in_english["Subject"] == "1 new notification on shop.example.com"
    # The site's language for those who chose none.
    settings.LANGUAGE_CODE = "fr"
    notify(default, "Encore")
    run(soon() + timedelta(days=1))
    assert smtp.mailbox.to(default.email)[-1]["Subject"] == "1 nouvelle notification sur shop.example.com"


@pytest.mark.django_db
def test_a_refused_recipient_is_retried_by_the_next_run_and_the_others_go_on(smtp):
    first, refused, last = subscriber(), subscriber(), subscriber()
    for reader in (first, refused, last):
        notify(reader, f"For {reader.username}")
    smtp.mailbox.refused.add(refused.email)
    with pytest.raises(CommandError, match=rf"1 digest\(s\) could not be sent .*user {refused.pk}: .*550"):
        call_command("send_notification_digests", now=soon().isoformat())
    assert len(smtp.mailbox.to(first.email)) == 1 and len(smtp.mailbox.to(last.email)) == 1
    failed = Digest.objects.get(user=refused)
    assert failed.sent_at is None and failed.attempts == 1 and "550" in failed.last_error

    smtp.mailbox.refused.clear()
    notify(refused, "Meanwhile")
    call_command("send_notification_digests", now=(soon() + timedelta(minutes=5)).isoformat())
    [message] = smtp.mailbox.to(refused.email)
    assert message["Message-ID"] == failed.message_id and titles(message) == [f"For {refused.username}"]
    assert len(smtp.mailbox.to(first.email)) == 1 and len(smtp.mailbox.to(last.email)) == 1
    # The notification that came meanwhile goes in the next digest, once the period is over.
    call_command("send_notification_digests", now=(soon() + timedelta(days=1)).isoformat())
    assert titles(smtp.mailbox.to(refused.email)[-1]) == ["Meanwhile"]


@pytest.mark.django_db
def test_an_address_refused_run_after_run_is_given_up(smtp):
    reader = subscriber()
    notify(reader, "Never delivered")
    smtp.mailbox.refused.add(reader.email)
    for attempt in range(digests.MAX_ATTEMPTS):
        assert reader.pk in run(soon(minutes=2 + attempt)).failed
    assert run(soon(minutes=30)).failed == {}
    given_up = Digest.objects.get(user=reader)
    assert given_up.sent_at is None and given_up.attempts == digests.MAX_ATTEMPTS and "550" in given_up.last_error
    smtp.mailbox.refused.clear()
    notify(reader, "Later")
    run(soon() + timedelta(days=1))
    [message] = smtp.mailbox.to(reader.email)
    assert titles(message) == ["Later"]


@pytest.mark.django_db
def test_a_run_whose_lease_runs_out_leaves_the_rest_to_the_next_run(smtp):
    readers = [subscriber(), subscriber()]
    for reader in readers:
        notify(reader, f"For {reader.username}")
    # A lease no longer than the margin: the run may not send at all once it has recorded.
    outcome = digests.Run(now=soon(), lease=digests.LEASE_MARGIN).run()
    assert (outcome.sent, outcome.unfinished) == (0, 2) and smtp.mailbox.messages == []
    recorded = {digest.user_id: digest.message_id for digest in Digest.objects.filter(sent_at__isnull=True)}
    assert set(recorded) == {reader.pk for reader in readers}
    assert not DigestState.objects.exclude(lease_owner="").exists()  # released on the way out
    assert run(soon(minutes=3)).resent == 2
    for reader in readers:
        [message] = smtp.mailbox.to(reader.email)
        assert message["Message-ID"] == recorded[reader.pk] and titles(message) == [f"For {reader.username}"]


@pytest.mark.django_db
def test_unsent_digests_of_a_reader_who_unsubscribed_are_dropped(smtp):
    reader = subscriber()
    notify(reader, "Hello")
    smtp.mailbox.refused.add(reader.email)
    assert run(soon()).failed
    preferences.update(reader, {"digest": "off"}, partial=True)
    smtp.mailbox.refused.clear()
    assert run(soon() + timedelta(minutes=5)).failed == {}
    assert smtp.mailbox.to(reader.email) == [] and not Digest.objects.filter(user=reader).exists()


@pytest.mark.django_db
def test_the_command_is_quiet_unless_asked_and_refuses_without_a_site_url(smtp, settings):
    reader = subscriber()
    notify(reader, "Hi")
    quiet, chatty = StringIO(), StringIO()
    call_command("send_notification_digests", now=soon().isoformat(), stdout=quiet)
    assert quiet.getvalue() == ""
    call_command("send_notification_digests", now=soon().isoformat(), verbosity=2, stdout=chatty)
    assert chatty.getvalue().startswith("Digests: 0 sent")
    with pytest.raises(CommandError, match="not an ISO 8601"):
        call_command("send_notification_digests", now="yesterday")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("send_notification_digests", batch_size=0)
    settings.NOTIFICATIONS_SITE_URL = ""
    with pytest.raises(CommandError, match="NOTIFICATIONS_SITE_URL is not set"):
        call_command("send_notification_digests")


@pytest.mark.django_db
def test_a_batch_costs_the_same_number_of_queries_whatever_its_size(settings):
    """Building digests: a fixed number of queries per batch, then one UPDATE per email."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFICATIONS_SITE_URL = SITE
    counts = {}
    for size in (5, 50):
        readers = [subscriber() for _ in range(size)]
        group = make_group(members=readers)
        for reader in readers:
            notify(reader, "Personal")
        notify(group, "To the group")
        run_ = digests.Run(now=soon())
        run_._floors = run_._event_floors()
        batch = list(digests.candidates(run_.now).filter(pk__in=[reader.pk for reader in readers]).order_by("pk"))
        mail.outbox.clear()
        with CaptureQueriesContext(connection) as queries:
            run_.batch(batch)
        assert len(mail.outbox) == size == run_.outcome.sent
        counts[size] = len(queries) - size  # less the UPDATE marking each email sent
    assert counts[5] == counts[50] <= 14, counts


@pytest.mark.django_db
def test_checks_name_a_missing_or_unusable_site_url(settings):
    from notifications.checks import check_digests

    settings.NOTIFICATIONS_SITE_URL = ""
    assert check_digests(None) == []
    settings.NOTIFICATIONS_PREFERENCES = ["not", "a", "dict"]  # E014's to report, not this check's to trip on
    assert check_digests(None) == []
    settings.NOTIFICATIONS_PREFERENCES = {"digest": "daily"}
    assert [error.id for error in check_digests(None)] == ["notifications.E021"]
    settings.NOTIFICATIONS_SITE_URL = "shop.example.com"
    assert [error.id for error in check_digests(None)] == ["notifications.E020"]
    settings.NOTIFICATIONS_SITE_URL = "http://shop.example.com"
    settings.DEBUG = False
    assert [error.id for error in check_digests(None)] == ["notifications.W020"]
    settings.NOTIFICATIONS_SITE_URL = SITE
    assert check_digests(None) == []
    settings.NOTIFICATIONS_DIGEST_LEASE = digests.LEASE_MARGIN
    settings.NOTIFICATIONS_DIGEST_MAX_ITEMS = 0
    assert [error.id for error in check_digests(None)] == ["notifications.E022", "notifications.E023"]


# Runs as processes: racing, killed, exit codes ---------------------------------------------------

PROCESS_TIMEOUT = 60


def command(smtp, *args):
    """`send_notification_digests` in a process of its own, on the test database, sending to `smtp`."""
    env = server_env("tests.settings_digests", {"DIGEST_TEST_SMTP_PORT": str(smtp.port), "DIGEST_TEST_SITE_URL": SITE})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), *sys.path]))
    return subprocess.Popen(
        [sys.executable, "-m", "django", "send_notification_digests", *args],
        cwd=BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process):
    """(exit status, stdout, stderr) of a command process, bounded."""
    out, err = process.communicate(timeout=PROCESS_TIMEOUT)
    return process.returncode, out, err


def titles_by_message(mailbox, reader):
    """{Message-ID: titles} of the messages `reader` received (copies of one message counted once)."""
    return {message["Message-ID"]: tuple(titles(message)) for message in mailbox.to(reader.email)}


@pytest.mark.django_db(transaction=True)
def test_two_overlapping_runs_send_each_notification_once(smtp):
    readers = [subscriber() for _ in range(16)]
    for reader in readers:
        notify(reader, f"First for {reader.username}")
        notify(reader, f"Second for {reader.username}")
    announce("For everyone")
    smtp.mailbox.delay = 0.1  # each run takes seconds, so the two overlap all along
    now = soon().isoformat()
    racing = [command(smtp, "--now", now, "--batch-size", "2") for _ in range(2)]
    assert [finished(process) for process in racing] == [(0, "", "")] * 2

    for reader in readers:
        [message] = smtp.mailbox.to(reader.email)
        assert sorted(titles(message)) == sorted([f"First for {reader.username}", f"Second for {reader.username}", "For everyone"])
    # Both runs sent some of them (each on a connection of its own): they did overlap.
    assert len(set(smtp.mailbox.peers)) == 2
    assert Digest.objects.filter(sent_at__isnull=True).count() == 0
    assert DigestState.objects.exclude(lease_owner="").count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_run_killed_midway_is_finished_by_the_next_run_after_its_lease(smtp):
    sent, in_doubt, recorded = readers = [subscriber() for _ in range(3)]
    for reader in readers:
        notify(reader, f"For {reader.username}")
    smtp.mailbox.hold_for = in_doubt.email
    now = soon()
    doomed = command(smtp, "--now", now.isoformat())
    assert smtp.mailbox.held.wait(PROCESS_TIMEOUT), finished(doomed)
    doomed.kill()  # SIGKILL while the server holds the message, before its 250
    doomed.wait(PROCESS_TIMEOUT)
    smtp.mailbox.release.set()

    digests_of = {digest.user_id: digest for digest in Digest.objects.all()}
    assert digests_of[sent.pk].sent_at is not None
    assert digests_of[in_doubt.pk].sent_at is None and digests_of[recorded.pk].sent_at is None
    assert len(smtp.mailbox.to(in_doubt.email)) == 1 and smtp.mailbox.to(recorded.email) == []

    # Within the lease the dead run still holds them: nothing is sent.
    assert finished(command(smtp, "--now", (now + timedelta(minutes=1)).isoformat())) == (0, "", "")
    assert len(smtp.mailbox.messages) == 2
    lease = timedelta(seconds=app_settings.NOTIFICATIONS_DIGEST_LEASE)
    status, out, _ = finished(command(smtp, "--now", (now + lease + timedelta(seconds=1)).isoformat(), "-v", "2"))
    assert status == 0 and "0 sent, 2 sent again" in out

    assert titles_by_message(smtp.mailbox, sent) == {digests_of[sent.pk].message_id: (f"For {sent.username}",)}
    assert titles_by_message(smtp.mailbox, recorded) == {digests_of[recorded.pk].message_id: (f"For {recorded.username}",)}
    copies = smtp.mailbox.to(in_doubt.email)
    assert len(copies) == 2 and {message["Message-ID"] for message in copies} == {digests_of[in_doubt.pk].message_id}
    assert titles(copies[0]) == titles(copies[1]) == [f"For {in_doubt.username}"]
    assert Digest.objects.filter(sent_at__isnull=True).count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_failed_email_makes_the_command_exit_non_zero(smtp):
    readers = [subscriber(), subscriber()]
    for reader in readers:
        notify(reader, "Hello")
    smtp.mailbox.refused.add(readers[0].email)
    status, out, err = finished(command(smtp, "--now", soon().isoformat()))
    assert status == 1 and out == "" and f"user {readers[0].pk}" in err and "550" in err
    assert len(smtp.mailbox.to(readers[1].email)) == 1


# Who is connected ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_orm_thread_connection")
async def test_a_reader_connected_now_is_left_for_a_later_run(smtp, notifications_client):
    here, away = [await call(subscriber) for _ in range(2)]
    for reader in (here, away):
        await call(notify, reader, "News")
    client = await notifications_client(here)
    deadline = time.monotonic() + 10
    while await call(online.connected_users, [here.pk]) != {here.pk}:
        assert time.monotonic() < deadline, "the relay never said the reader is connected"
        await asyncio.sleep(0.05)
    outcome = await call(run, soon())
    assert (outcome.sent, outcome.postponed) == (1, 1)
    assert smtp.mailbox.to(here.email) == [] and len(smtp.mailbox.to(away.email)) == 1

    await client.close()
    while await call(online.connected_users, [here.pk]):
        assert time.monotonic() < deadline + online.ONLINE_TTL, "the reader never left"
        await asyncio.sleep(0.1)
    outcome = await call(run, soon(minutes=3))
    assert (outcome.sent, outcome.postponed) == (1, 0) and titles(smtp.mailbox.to(here.email)[0]) == ["News"]


@pytest.mark.django_db
def test_without_redis_nobody_counts_as_connected_with_one_warning(smtp, caplog):
    readers = [subscriber() for _ in range(3)]
    for reader in readers:
        notify(reader, "News")
    with override_settings(NOTIFICATIONS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"), caplog.at_level(logging.WARNING):
        outcome = run(soon(), batch_size=1)
    assert outcome.sent == 3 and outcome.postponed == 0
    warnings = [record for record in caplog.records if record.name == "notifications.digests"]
    assert len(warnings) == 1 and "Redis is unreachable" in warnings[0].getMessage()


@override_settings(NOTIFICATIONS_SITE_URL=f"{SITE}/", ALLOWED_HOSTS=["shop.example.com", "cdn.shop.example.com"])
def test_email_links_are_absolute_and_only_into_the_site():
    from notifications.digest_mail import absolute_link

    assert absolute_link("/orders/5/?tab=1") == f"{SITE}/orders/5/?tab=1"
    assert absolute_link("https://cdn.shop.example.com/a/") == "https://cdn.shop.example.com/a/"
    for elsewhere in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)", "orders/5/", "/\\evil.example", ""):
        assert absolute_link(elsewhere) == "", elsewhere


@pytest.mark.django_db
def test_the_unsubscribe_link_takes_only_get_and_post():
    from notifications.digest_mail import unsubscribe_token

    reader = subscriber()
    path = f"/notifications/unsubscribe/{unsubscribe_token(reader.pk)}/"
    assert Client().put(path).status_code == 405
    assert preferences.choices_for(reader).digest == "daily"
