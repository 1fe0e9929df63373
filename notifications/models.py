"""
Events are the source of truth; Redis only carries them.

An event is stored once however large its audience. Who receives an inbox event is kept as a
few `Recipient` rows (a user, a group, or everyone / all staff), resolved when someone reads or
connects, so `notify(group)` and `announce()` cost the same for ten users as for a million.
Events about objects (admin activity, tracked models) need no recipients: their audience is
whoever may view that model. Read state is a per-user marker ("everything up to event N is
read") plus a Receipt for each later event read one by one.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class Kind(models.TextChoices):
    ADMIN_ADDITION = "admin.addition", _("Admin addition")
    ADMIN_CHANGE = "admin.change", _("Admin change")
    ADMIN_DELETION = "admin.deletion", _("Admin deletion")
    MODEL_CREATED = "model.created", _("Model created")
    MODEL_UPDATED = "model.updated", _("Model updated")
    MODEL_DELETED = "model.deleted", _("Model deleted")
    NOTIFICATION = "notification", _("Notification")
    ANNOUNCEMENT = "announcement", _("Announcement")


OBJECT_KINDS = frozenset(kind for kind in Kind.values if kind.startswith(("admin.", "model.")))


class Audience(models.TextChoices):
    ALL = "all", _("All users")
    STAFF = "staff", _("Staff")


class Event(models.Model):
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices, default=Kind.NOTIFICATION, db_index=True)
    title = models.CharField(_("title"), max_length=255)
    body = models.TextField(_("body"), blank=True)
    url = models.CharField(_("link"), max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The object the event is about, as "app_label.model_name", its primary key and its str().
    target_type = models.CharField(_("target type"), max_length=100, blank=True)
    target_id = models.CharField(_("target id"), max_length=255, blank=True)
    target_repr = models.CharField(_("target"), max_length=200, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    # What an admin or model event's title and body are written from in each reader's language
    # (notifications.rendering): the actor's name, and an admin change's message as the log keeps it.
    params = models.JSONField(_("parameters"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    # Where it was published in the Redis stream (notifications.cursors); null while it waits in
    # the outbox, because Redis was unreachable when its transaction committed.
    stream_position = models.BigIntegerField(_("stream position"), null=True, blank=True, unique=True, editable=False)
    # The burst an object event belongs to (notifications.bursts): the id of its first event, null
    # on that first event itself and on events of no burst, so an event's group is `burst or id`.
    burst = models.BigIntegerField(_("burst"), null=True, blank=True, editable=False, db_index=True)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="notif_event_target"),
            models.Index(fields=["id"], condition=models.Q(stream_position__isnull=True), name="notif_event_outbox"),
            # Where a new object event looks for the burst it joins: the recent first events of bursts.
            models.Index(
                fields=["target_type", "kind", "actor", "created_at"],
                condition=models.Q(burst__isnull=True),
                name="notif_event_burst_head",
            ),
        ]
        permissions = [("send_announcement", "Can send announcements")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.title}"


class Recipient(models.Model):
    """One addressee of an inbox event: exactly one of a user, a group or an audience."""

    event = models.ForeignKey(Event, verbose_name=_("event"), on_delete=models.CASCADE, related_name="recipients")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    group = models.ForeignKey(
        "auth.Group", verbose_name=_("group"), null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    audience = models.CharField(_("audience"), max_length=16, choices=Audience.choices, blank=True)

    class Meta:
        verbose_name = _("recipient")
        verbose_name_plural = _("recipients")
        constraints = [
            models.CheckConstraint(
                name="notif_recipient_one_addressee",
                condition=(
                    models.Q(user__isnull=False, group__isnull=True, audience="")
                    | models.Q(user__isnull=True, group__isnull=False, audience="")
                    | models.Q(user__isnull=True, group__isnull=True, audience__in=Audience.values)
                ),
            )
        ]
        indexes = [models.Index(fields=["audience", "event"], name="notif_recipient_audience")]

    def __str__(self):
        addressee = self.user or self.group or self.get_audience_display()
        return gettext("%(addressee)s ← event %(event)s") % {"addressee": addressee, "event": self.event_id}


class ReadMarker(models.Model):
    """
    Every event up to `read_through` is read for this user: "mark all read" is one upsert, however
    many events there are. Events after it are read when they have a Receipt.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    read_through = models.BigIntegerField(_("read through event"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("read marker")
        verbose_name_plural = _("read markers")

    def __str__(self):
        return gettext("%(user)s read through event %(event)s") % {"user": self.user, "event": self.read_through}


class Receipt(models.Model):
    """A user has read an event (one newer than their ReadMarker)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    event = models.ForeignKey(Event, verbose_name=_("event"), on_delete=models.CASCADE, related_name="receipts")
    read_at = models.DateTimeField(_("read at"), default=timezone.now)

    class Meta:
        verbose_name = _("receipt")
        verbose_name_plural = _("receipts")
        constraints = [models.UniqueConstraint(fields=["user", "event"], name="notif_receipt_once")]

    def __str__(self):
        return gettext("%(user)s read event %(event)s") % {"user": self.user, "event": self.event_id}


class DigestFrequency(models.TextChoices):
    OFF = "off", _("Off")
    HOURLY = "hourly", _("Hourly")
    DAILY = "daily", _("Daily")
    WEEKLY = "weekly", _("Weekly")


class Preferences(models.Model):
    """
    What a user chose about being notified (notifications.preferences). No row, or a field left
    empty (null, "" or null list), follows the site's default (NOTIFICATIONS_PREFERENCES), so a
    site that changes a default changes it for everyone who never chose.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    toasts = models.BooleanField(
        _("toasts"), null=True, blank=True, help_text=_("Show live toasts; empty: the site's default.")
    )
    digest = models.CharField(
        _("email digest"),
        max_length=8,
        choices=DigestFrequency.choices,
        blank=True,
        help_text=_("Email digest; empty: the site's default."),
    )
    push = models.BooleanField(
        _("push"), null=True, blank=True, help_text=_("Push to this user's devices; empty: the site's default.")
    )
    language = models.CharField(
        _("language"), max_length=15, blank=True, help_text=_("Language of emails and pushes; empty: the site's.")
    )
    # Kinds ("model.updated") and topics ("model:shop.order", "object:shop.order:5") muted on
    # every channel; null: the site's default list.
    muted_kinds = models.JSONField(_("muted kinds"), null=True, blank=True)
    muted_topics = models.JSONField(_("muted topics"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("notification preferences")
        verbose_name_plural = _("notification preferences")

    def __str__(self):
        return gettext("Notification preferences of %(user)s") % {"user": self.user}


class PushSubscription(models.Model):
    """
    One device's Web Push subscription (notifications.webpush): where its push service takes
    messages for it, and the keys they are encrypted with. An endpoint belongs to one user, the
    last one who subscribed that browser.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    endpoint = models.CharField(_("endpoint"), max_length=1024, unique=True)
    # The browser's ECDH P-256 public key and its 16-byte auth secret, base64url (RFC 8291).
    p256dh = models.CharField(_("public key"), max_length=100)
    auth = models.CharField(_("auth secret"), max_length=40)
    # The browser that subscribed, so the user and the admin can tell devices apart.
    user_agent = models.CharField(_("browser"), max_length=255, blank=True)
    # The login (its id in the session, webpush.lifetime) that made it or last found it held:
    # logging out of it ends the subscription.
    login_id = models.CharField(_("login"), max_length=43, blank=True, default="", db_index=True)
    # When the push service will drop the subscription by itself (PushSubscription.expirationTime).
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    last_success_at = models.DateTimeField(_("last success at"), null=True, blank=True)
    last_failure_at = models.DateTimeField(_("last failure at"), null=True, blank=True)

    class Meta:
        verbose_name = _("push subscription")
        verbose_name_plural = _("push subscriptions")

    def __str__(self):
        return gettext("Push subscription %(id)s of %(user)s") % {"id": self.pk, "user": self.user}


class DigestState(models.Model):
    """
    Where a user's email digests stand (notifications.digests): the newest event a digest took
    in, when the last one was made, and which run holds the user now (a lease that expires,
    so a run that died lets go of its users).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    last_event_id = models.BigIntegerField(_("last event"), default=0)
    last_digest_at = models.DateTimeField(_("last digest at"), null=True, blank=True)
    lease_owner = models.CharField(_("held by run"), max_length=32, blank=True)
    lease_until = models.DateTimeField(_("held until"), null=True, blank=True)

    class Meta:
        verbose_name = _("digest state")
        verbose_name_plural = _("digest states")

    def __str__(self):
        return gettext("Digests of %(user)s through event %(event)s") % {"user": self.user, "event": self.last_event_id}


class Digest(models.Model):
    """
    One email digest, recorded before it is sent and marked sent once the mail server accepted
    it; an unsent one is sent again, with the same Message-ID, by the next run that holds its user.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    message_id = models.CharField(_("Message-ID"), max_length=255, unique=True)
    # The events the email lists (the newest, up to NOTIFICATIONS_DIGEST_MAX_ITEMS), and how many it took in.
    event_ids = models.JSONField(_("events"), default=list)
    total = models.PositiveIntegerField(_("total"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("email digest")
        verbose_name_plural = _("email digests")
        indexes = [
            models.Index(fields=["user"], condition=models.Q(sent_at__isnull=True), name="notif_digest_unsent"),
            models.Index(fields=["sent_at"], name="notif_digest_sent_at"),
        ]

    def __str__(self):
        return gettext("Digest %(message_id)s to %(user)s") % {"message_id": self.message_id, "user": self.user}
