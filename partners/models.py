"""Partner agencies, their API keys, and the agreements that say what they may send and see."""

from __future__ import annotations

import datetime as dt
import ipaddress

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cameras.models import Camera, Center
from incidents.catalogue import EVENT_TYPE_CHOICES, PartnerKind, SharePolicy


class Partner(models.Model):
    """A partner system: police 112, fire 119, the MOJ tracking centre, a safety app, …

    `signing_secret`, when set, makes every request carry an HMAC signature; it is a
    secret (never serialized, never logged) and also signs our outbound webhooks.
    """

    kind = models.CharField(_("kind"), max_length=20, choices=PartnerKind.choices)
    slug = models.SlugField(_("slug"), max_length=60, unique=True)
    name = models.CharField(_("name"), max_length=120)
    contact = models.CharField(_("contact"), max_length=200, blank=True)
    webhook_url = models.URLField(_("webhook URL"), blank=True)
    signing_secret = models.CharField(_("signing secret"), max_length=128, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(_("rate limit (requests/minute)"), default=600)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("partner")
        verbose_name_plural = _("partners")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """A partner's API key. Only its SHA-256 is stored; the key is shown once at creation.

    The visible `prefix` finds the row without scanning hashes and tells admins which key
    a log line or a revocation is about.
    """

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("name"), max_length=100, blank=True)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.partner})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Agreement(models.Model):
    """What a partner may send and what video it may receive, when, and for how long."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="agreements")
    title = models.CharField(_("title"), max_length=200)
    valid_from = models.DateField(_("valid from"), default=dt.date.today)
    valid_to = models.DateField(_("valid to"), null=True, blank=True)
    curfew_start = models.TimeField(_("curfew start"), default=dt.time(0, 0))
    curfew_end = models.TimeField(_("curfew end"), default=dt.time(6, 0))
    max_share_minutes = models.PositiveIntegerField(_("maximum share (minutes)"), default=60)
    centers = models.ManyToManyField(
        Center, blank=True, verbose_name=_("centres covered"), help_text=_("Empty: every centre.")
    )
    viewer_networks = models.TextField(
        _("viewer networks"),
        blank=True,
        help_text=_("IP ranges (CIDR, one per line) the partner's staff open share links from. Empty: any."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("agreement")
        verbose_name_plural = _("agreements")
        ordering = ["partner", "-valid_from"]

    def __str__(self) -> str:
        return f"{self.partner}: {self.title}"

    def is_valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def is_valid_now(self) -> bool:
        return self.is_valid_on(timezone.localdate())

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(line.strip(), strict=False) for line in self.viewer_networks.split() if line
        ]

    def clean(self) -> None:
        try:
            self.networks()
        except ValueError as exc:
            raise ValidationError({"viewer_networks": str(exc)}) from exc


class AgreementEventType(models.Model):
    """One event type an agreement allows, with its share policy (≤ the catalogue's)."""

    agreement = models.ForeignKey(Agreement, on_delete=models.CASCADE, related_name="event_types")
    event_type = models.CharField(_("event type"), max_length=40, choices=EVENT_TYPE_CHOICES)
    share_policy = models.CharField(_("share policy"), max_length=20, choices=SharePolicy.choices)
    # Off unless granted: saved footage is a provision of its own, beyond live video.
    # (db_default too: code of the previous release, still running during a deploy, inserts without it.)
    allow_clips = models.BooleanField(
        _("saved clips"),
        default=False,
        db_default=False,
        help_text=_("The partner may also download an incident's saved clips through its video share."),
    )

    class Meta:
        verbose_name = _("allowed event type")
        verbose_name_plural = _("allowed event types")
        constraints = [
            models.UniqueConstraint(fields=["agreement", "event_type"], name="agreement_event_type_once")
        ]

    def __str__(self) -> str:
        return f"{self.event_type} ({self.share_policy})"


class CapEventMapping(models.Model):
    """How a partner's CAP 1.2 `info/event` (and optionally `category`) maps to an event type."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="cap_mappings")
    cap_event = models.CharField(_("CAP event"), max_length=120)
    cap_category = models.CharField(_("CAP category"), max_length=20, blank=True, help_text=_("Empty: any."))
    event_type = models.CharField(_("event type"), max_length=40, choices=EVENT_TYPE_CHOICES)

    class Meta:
        verbose_name = _("CAP mapping")
        verbose_name_plural = _("CAP mappings")
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "cap_event", "cap_category"], name="cap_mapping_once_per_partner"
            )
        ]

    def __str__(self) -> str:
        return f"{self.cap_event}/{self.cap_category or '*'} → {self.event_type}"


class Share(models.Model):
    """Live video of an incident's cameras provided to one partner, on a stated legal basis.

    The token that opens `/shared/<token>/` is never stored. It is derived as
    HMAC-SHA256(SHARE_TOKEN_SECRET, "share:" + token_nonce) (256 bits): the server can
    re-derive it to show the partner its `viewer_url` in the API and webhooks, while a
    leaked database (nonce and sha256 only) opens nothing without the secret. Lookups
    go by `token_hash` = sha256(token). Rotating the secret voids every open link.

    `created_by` is null when the rule engine shared automatically at intake.
    `ended_at` is set exactly once, when the share stops (expiry, revocation, incident
    closed); it is what makes "share.ended" happen once however many workers look.
    """

    class EndReason(models.TextChoices):
        EXPIRED = "expired", _("expired")
        REVOKED = "revoked", _("revoked")
        INCIDENT_CLOSED = "incident_closed", _("incident closed")

    incident = models.ForeignKey("incidents.Incident", on_delete=models.PROTECT, related_name="shares")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="shares")
    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="shares")
    cameras: models.ManyToManyField[Camera, ShareCamera] = models.ManyToManyField(
        "cameras.Camera", through="ShareCamera", related_name="shares"
    )
    follows_subject = models.BooleanField(_("follows the subject"), default=True)
    event_type = models.CharField(_("event type"), max_length=40)
    legal_basis = models.CharField(_("legal basis"), max_length=300)
    reason = models.TextField(_("operator's reason"), blank=True)
    purpose = models.CharField(_("purpose"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    starts_at = models.DateTimeField(_("starts"))
    expires_at = models.DateTimeField(_("expires"))
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    end_reason = models.CharField(_("end reason"), max_length=20, choices=EndReason.choices, blank=True)
    token_nonce = models.CharField(max_length=64, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        verbose_name = _("video share")
        verbose_name_plural = _("video shares")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["incident", "partner"], name="share_incident_partner"),
            models.Index(fields=["expires_at"], condition=models.Q(ended_at__isnull=True), name="share_open"),
        ]

    def __str__(self) -> str:
        return f"share #{self.pk} of incident {self.incident_id} to {self.partner_id}"

    def is_active(self, now: dt.datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.ended_at is None and self.revoked_at is None and self.starts_at <= now < self.expires_at


class ShareCamera(models.Model):
    """A camera in a share, in the incident's distance order (re-ranked as the subject moves)."""

    share = models.ForeignKey(Share, on_delete=models.CASCADE, related_name="share_cameras")
    camera = models.ForeignKey("cameras.Camera", on_delete=models.PROTECT, related_name="+")
    rank = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["share", "rank"]
        constraints = [models.UniqueConstraint(fields=["share", "camera"], name="share_camera_once")]

    def __str__(self) -> str:
        return f"{self.share_id}: {self.camera_id} (#{self.rank})"


class WebhookMessage(models.Model):
    """One outbound webhook to a partner (an outbox row, written in the action's transaction).

    The Celery task delivers it; `idempotency_key` is sent on every attempt so the partner
    can drop repeats. `state` moves pending → delivered | failed (gave up).
    """

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("gave up")

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="webhooks")
    event = models.CharField(_("event"), max_length=40)
    payload = models.JSONField(_("payload"))
    idempotency_key = models.CharField(_("idempotency key"), max_length=64, unique=True)
    state = models.CharField(_("state"), max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    locked_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook message")
        verbose_name_plural = _("webhook messages")
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=models.Q(state="pending"), name="webhook_pending"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.partner_id} ({self.state})"


class WebhookDelivery(models.Model):
    """One attempt to deliver a webhook: the delivery log admins read."""

    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveSmallIntegerField(_("attempt"))
    at = models.DateTimeField(_("at"), auto_now_add=True)
    url = models.URLField(_("URL"))
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    succeeded = models.BooleanField(_("succeeded"), default=False)

    class Meta:
        verbose_name = _("webhook delivery attempt")
        verbose_name_plural = _("webhook delivery attempts")
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.message_id} attempt {self.attempt}: {self.status_code or self.error}"
