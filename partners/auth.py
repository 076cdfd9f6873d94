"""Partner authentication: a Bearer API key, and an HMAC signature for partners with a secret."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from partners.models import Agreement, ApiKey, Partner
from partners.selectors import api_key_check
from partners.services import api_key_touch
from smartcity.redis import shared_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartnerUser:
    """`request.user` for partner API calls."""

    partner: Partner
    key: ApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> int:
        return self.partner.pk

    def agreements_of(self, event_type: str) -> list[Agreement]:
        """`partners.sharing.agreements_of` for this partner, from what came with the key if it did."""
        from partners.sharing import agreements_listing, agreements_of  # sharing needs this module

        read_with_key = getattr(self.key, "agreements", None)
        if read_with_key is None:
            return agreements_of(partner_id=self.partner.pk, event_type=event_type)
        return agreements_listing(read_with_key, event_type)


def signature_expected(*, secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_seen_before(*, partner_id: int, signature: str) -> bool:
    """True if this exact signature was already used inside the freshness window.

    Redis is down → treated as unseen: DESIGN §6 wants events accepted while Redis is
    away; the timestamp window still bounds any replay to five minutes.
    """
    key = f"apisig:{partner_id}:{signature}"
    try:
        first_use = shared_redis().set(key, 1, nx=True, ex=2 * settings.API_SIGNATURE_MAX_AGE_S)
        return not first_use
    except redis.RedisError:
        log.warning("replay cache unavailable; accepting signature without replay check")
        return False


def signature_verify(*, partner: Partner, request: Request) -> None:
    timestamp = request.META.get("HTTP_X_TIMESTAMP", "")
    given = request.META.get("HTTP_X_SIGNATURE", "")
    if not timestamp or not given:
        raise AuthenticationFailed("X-Timestamp and X-Signature are required for this partner")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise AuthenticationFailed("X-Timestamp must be unix seconds")
    if abs(time.time() - int(timestamp)) > settings.API_SIGNATURE_MAX_AGE_S:
        raise AuthenticationFailed("X-Timestamp is too old or too far in the future")
    scheme, _, hex_digest = given.partition("=")
    expected = signature_expected(secret=partner.signing_secret, timestamp=timestamp, body=request.body)
    if scheme != "sha256" or not hmac.compare_digest(hex_digest.encode(), expected.encode()):
        raise AuthenticationFailed("signature does not match")
    if signature_seen_before(partner_id=partner.pk, signature=hex_digest):
        raise AuthenticationFailed("signature already used (replay)")


class PartnerKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[PartnerUser, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise AuthenticationFailed("Authorization: Bearer <API key> is required")
        # A view that reads the sender's agreements on every call has them read with the key.
        view = (getattr(request, "parser_context", None) or {}).get("view")
        key = api_key_check(raw=raw.strip(), with_agreements=getattr(view, "agreements_with_key", False))
        if key is None:
            raise AuthenticationFailed("unknown or revoked API key")
        if key.partner.signing_secret:
            signature_verify(partner=key.partner, request=request)
        api_key_touch(key=key)
        return PartnerUser(partner=key.partner, key=key), key

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="partner-api"'
