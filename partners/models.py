"""Partner agencies, their API keys, and the agreements that say what they may send and see."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cameras.models import Center
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


class AgreementEventType(models.Model):
    """One event type an agreement allows, with its share policy (≤ the catalogue's)."""

    agreement = models.ForeignKey(Agreement, on_delete=models.CASCADE, related_name="event_types")
    event_type = models.CharField(_("event type"), max_length=40, choices=EVENT_TYPE_CHOICES)
    share_policy = models.CharField(_("share policy"), max_length=20, choices=SharePolicy.choices)

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
