"""Writes about partners: API keys."""

from __future__ import annotations

import datetime as dt
import secrets

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from partners.models import ApiKey, Partner
from partners.selectors import KEY_SCHEME, api_key_hash


def api_key_create(*, partner: Partner, name: str = "", actor: str = "system") -> tuple[ApiKey, str]:
    """A new key for `partner`. Returns the row and the key itself, which is never stored."""
    prefix = secrets.token_hex(4)
    raw = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(partner=partner, name=name, prefix=prefix, key_hash=api_key_hash(raw))
        audit_record(
            action="apikey.create",
            actor=actor,
            partner_id=partner.pk,
            object_type="apikey",
            object_id=key.pk,
            details={"prefix": prefix, "name": name},
        )
    return key, raw


def api_key_revoke(*, key: ApiKey, actor: str = "system") -> ApiKey:
    """Revoke a key at once; requests with it are refused from now on."""
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated:
            audit_record(
                action="apikey.revoke",
                actor=actor,
                partner_id=key.partner_id,
                object_type="apikey",
                object_id=key.pk,
                details={"prefix": key.prefix},
            )
    key.refresh_from_db()
    return key


def api_key_touch(*, key: ApiKey) -> None:
    """Note the key's use, at most once a minute, so busy partners do not write on every request."""
    now = timezone.now()
    if key.last_used_at is not None and key.last_used_at > now - dt.timedelta(minutes=1):
        return  # the row we already hold says it was noted recently: no query at all
    ApiKey.objects.filter(pk=key.pk).exclude(last_used_at__gt=now - dt.timedelta(minutes=1)).update(
        last_used_at=now
    )
