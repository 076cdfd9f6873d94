"""Reads about partners: who holds an API key, and what their agreements allow."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import re

from django.contrib.postgres.aggregates import ArrayAgg
from django.db import connection
from django.db.models import Q, QuerySet, Value
from django.utils import timezone

from partners.models import Agreement, ApiKey, Partner, Share
from smartcity.sql import Prepared

KEY_SCHEME = "scn"


def api_key_hash(raw: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_prefix(raw: str) -> str | None:
    """The visible prefix of a key shaped `scn_<prefix>_<secret>`, or None if it is not one."""
    parts = raw.split("_", 2)  # the secret part may itself contain "_"
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1] or not parts[2]:
        return None
    return parts[1]


# Every partner request starts here: written out, as composing it through the ORM cost
# more than the lookup itself. Columns in model order (from_db): the key, then its partner.
API_KEY_COLUMNS = (
    "id",
    "partner_id",
    "name",
    "prefix",
    "key_hash",
    "created_at",
    "last_used_at",
    "revoked_at",
)
PARTNER_COLUMNS = (
    "id", "kind", "slug", "name", "contact", "webhook_url", "signing_secret",
    "rate_limit_per_minute", "is_active", "created_at",
)  # fmt: skip
API_KEY_SQL = """
SELECT k.id, k.partner_id, k.name, k.prefix, k.key_hash, k.created_at, k.last_used_at, k.revoked_at,
       p.id, p.kind, p.slug, p.name, p.contact, p.webhook_url, p.signing_secret,
       p.rate_limit_per_minute, p.is_active, p.created_at
FROM partners_apikey k JOIN partners_partner p ON p.id = k.partner_id
WHERE k.prefix = %s
"""


# Every partner request reads its key (and the events endpoint its agreements with it):
# prepared once per connection.
API_KEY = Prepared("smartcity_api_key", API_KEY_SQL.replace("%s", "%(prefix)s"), ("prefix",))


@functools.cache
def agreements_of_key() -> Prepared:
    from partners.sharing import AGREEMENTS_OF_KEY_SQL

    return Prepared("smartcity_agreements_of_key", AGREEMENTS_OF_KEY_SQL, ("prefix",))


def api_key_check(*, raw: str, with_agreements: bool = False) -> ApiKey | None:
    """The active key `raw` is, with its partner, or None. Constant-time on the secret part.

    `with_agreements`: the partner's agreements come with it, in the same round trip, as
    `key.agreements` ((agreement, {type: policy}) pairs; see `partners.sharing.agreements_listing`).
    """
    from partners.sharing import agreements_of_key_read

    prefix = api_key_prefix(raw)
    if prefix is None:
        return None
    agreement_rows: list[tuple[object, ...]] = []
    with connection.cursor() as cursor:
        if with_agreements:
            # Client-side binding sends both as one query; psycopg returns one result set each.
            sql = f"{API_KEY.ready(cursor)}; {agreements_of_key().ready(cursor)}"
            cursor.execute(sql, {"prefix": prefix})
            row = cursor.fetchone()
            cursor.nextset()
            agreement_rows = cursor.fetchall()
        else:
            cursor.execute(API_KEY.ready(cursor), {"prefix": prefix})
            row = cursor.fetchone()
    if row is None:
        return None
    width = len(API_KEY_COLUMNS)
    key = ApiKey.from_db(connection.alias, API_KEY_COLUMNS, row[:width])
    key.partner = Partner.from_db(connection.alias, PARTNER_COLUMNS, row[width:])
    if not hmac.compare_digest(key.key_hash, api_key_hash(raw)):
        return None
    if key.revoked_at is not None or not key.partner.is_active:
        return None
    if with_agreements:
        key.agreements = agreements_of_key_read(agreement_rows)  # type: ignore[attr-defined]
    return key


def shares_active(*, incident_id: int, partner_id: int) -> QuerySet[Share]:
    """A partner's shares of an incident that are open right now, each with `camera_ids`
    (its cameras' ids in rank order), in one query.

    Aggregated rather than prefetched: a prefetch is a second query, and each prefetched
    share would sit in a reference cycle with its related manager's queryset (freed only
    by Python's cyclic collector, whose runs pause a server process).
    """
    now = timezone.now()
    return (
        Share.objects.filter(
            incident_id=incident_id,
            partner_id=partner_id,
            ended_at__isnull=True,
            starts_at__lte=now,
            expires_at__gt=now,
        )
        .annotate(
            camera_ids=ArrayAgg(
                "share_cameras__camera_id",
                order_by="share_cameras__rank",
                filter=Q(share_cameras__isnull=False),
                default=Value([]),
            )
        )
        .order_by("expires_at")
    )


TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def share_by_token(token: str) -> Share | None:
    """The share a link token opens, ended or not; None for anything that is not one.

    Only the token's SHA-256 is looked up: the token itself is in no table.
    """
    if not TOKEN_SHAPE.match(token):
        return None
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    return (
        Share.objects.select_related("incident", "partner", "agreement").filter(token_hash=token_hash).first()
    )


def address_allowed(*, agreement: Agreement, address: str | None) -> bool:
    """Whether a viewer at `address` may open the agreement's shares (no ranges: anyone with the link)."""
    networks = agreement.networks()
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in networks)
