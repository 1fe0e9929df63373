"""The admin side: the announcement page and the read-only Event admin."""

import pytest
from django.test import Client

from notifications import notify
from notifications.models import Event, Preferences

from .factories import make_user

ANNOUNCE = "/admin/notifications/event/announce/"
CHANGELIST = "/admin/notifications/event/"

transactional = pytest.mark.django_db(transaction=True)


def admin_client(user):
    client = Client()
    client.force_login(user)
    return client


@transactional
def test_a_superuser_sends_an_announcement_to_staff(stream):
    root = make_user("root", superuser=True)
    client = admin_client(root)
    assert client.get(ANNOUNCE).status_code == 200
    response = client.post(ANNOUNCE, {"title": "Deploy at 22:00", "body": "Short outage", "url": "/status/", "audience": "staff"})
    assert response.status_code == 302 and response["Location"] == CHANGELIST
    event = Event.objects.get()
    assert (event.kind, event.title, event.actor, event.url) == ("announcement", "Deploy at 22:00", root, "/status/")
    [(_, routes, payload)] = stream.new_entries()
    assert routes == ["inbox:staff"]
    assert payload["actor"]["username"] == root.username
    assert "sent to: Staff." in client.get(CHANGELIST).content.decode()


@transactional
def test_invalid_announcements_store_nothing(stream):
    client = admin_client(make_user("root", superuser=True))
    response = client.post(ANNOUNCE, {"title": "", "url": "javascript:alert(1)", "audience": "everyone"})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) == {"title", "url", "audience"}
    assert not Event.objects.exists() and stream.new_entries() == []


@pytest.mark.django_db
def test_the_announcement_page_needs_its_permission():
    staff = make_user("staff", staff=True, perms=["notifications.view_event"])
    assert admin_client(staff).get(ANNOUNCE).status_code == 403
    assert "Send announcement" not in admin_client(staff).get(CHANGELIST).content.decode()
    sender = make_user("sender", staff=True, perms=["notifications.view_event", "notifications.send_announcement"])
    assert admin_client(sender).get(ANNOUNCE).status_code == 200
    assert "Send announcement" in admin_client(sender).get(CHANGELIST).content.decode()
    assert Client().get(ANNOUNCE).status_code == 302  # anonymous: to the admin's login


@pytest.mark.django_db
def test_the_event_admin_filters_searches_and_does_not_edit():
    root = make_user("root", superuser=True)
    client = admin_client(root)
    notify(root, "findable needle", body="b")
    other = notify(root, "something else")
    assert client.get(CHANGELIST, {"q": "needle"}).context["cl"].result_count == 1
    assert client.get(CHANGELIST, {"kind__exact": "notification"}).context["cl"].result_count == 2
    change = f"{CHANGELIST}{other.pk}/change/"
    page = client.get(change)
    assert page.status_code == 200 and root.username in page.content.decode()  # addressed to
    client.post(change, {"title": "rewritten"})
    assert Event.objects.get(pk=other.pk).title == "something else"
    assert client.get(f"{CHANGELIST}add/").status_code == 403


@pytest.mark.django_db
def test_the_admin_pages_speak_the_request_s_language():
    client = admin_client(make_user("root", superuser=True))
    page = client.get(ANNOUNCE, HTTP_ACCEPT_LANGUAGE="de").content.decode()
    for german in ("Eine Ankündigung senden", "Empfänger", "Alle Benutzer", "Ankündigung senden", "Optionaler Link"):
        assert german in page, german
    changelist = client.get(CHANGELIST, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Envoyer l’annonce" in changelist
    response = client.post(ANNOUNCE, {"title": "Maintenance", "audience": "all"}, HTTP_ACCEPT_LANGUAGE="fr", follow=True)
    assert "Annonce « Maintenance » envoyée à : Tous les utilisateurs." in response.content.decode()


def test_every_model_and_field_name_of_the_app_is_translatable():
    """Marked for translation, so the admin's headings, filters and forms follow the reader's language."""
    from django.apps import apps
    from django.utils.functional import Promise

    unmarked = []
    for model in apps.get_app_config("notifications").get_models():
        names = {"": model._meta.verbose_name, " (plural)": model._meta.verbose_name_plural}
        names |= {f".{field.name}": field.verbose_name for field in model._meta.get_fields() if not field.auto_created}
        unmarked += [f"{model.__name__}{where}" for where, name in names.items() if not isinstance(name, Promise)]
    assert unmarked == []


@pytest.mark.django_db
def test_the_event_admin_s_columns_and_the_app_s_models_are_named_in_the_request_s_language():
    client = admin_client(make_user("root", superuser=True))
    notify(make_user("bob"), "Bonjour")
    changelist = client.get(CHANGELIST, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    headings = (">Créé le<", ">Type<", ">Titre<", ">Auteur<", ">Type de l’objet<", ">Objet<")
    for french in (*headings, "Sélectionnez l’objet événement"):
        assert french in changelist, french
    index = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    for german in ("Lesebestätigungen", "Push-Abonnements", "Benachrichtigungseinstellungen"):
        assert german in index, german
    chosen = Preferences.objects.create(user=make_user("carl"), toasts=False)
    change_form = client.get(f"/admin/notifications/preferences/{chosen.pk}/change/", HTTP_ACCEPT_LANGUAGE="de")
    assert "Benachrichtigungseinstellungen von carl" in change_form.content.decode()
