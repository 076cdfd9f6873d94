"""Outbound webhooks to partners: signed like their inbound requests, delivered by Celery.

An action writes a `WebhookMessage` in its own transaction (the outbox) and enqueues the
delivery after commit; a beat sweeper re-enqueues anything whose enqueue was lost (Redis
away, a worker killed mid-attempt). Each attempt is logged as a `WebhookDelivery`.
A dead partner costs one bounded HTTP timeout per attempt and never blocks anyone else:
retries are scheduled with exponential backoff and jitter, never slept on in a worker.

Headers: `X-Timestamp` (unix seconds), `X-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>">` with the partner's signing secret (as inbound, DESIGN §4),
`Idempotency-Key` (the same on every attempt of one message), `X-Webhook-Event`.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import http.client
import json
import logging
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from partners.auth import signature_expected
from partners.models import Partner, WebhookDelivery, WebhookMessage

log = logging.getLogger(__name__)

USER_AGENT = "SmartCitySafetyNet-Webhook/1"
# Stored in place of a share link: the outbox keeps no token (only the share id), the
# link is derived when the message is sent (see partners.models.Share).
VIEWER_URL_PENDING = "<viewer_url>"


def webhook_body(message: WebhookMessage) -> bytes:
    """The bytes sent: the stored envelope with any share link filled in."""
    envelope = copy.deepcopy(message.payload)
    share = envelope.get("data", {}).get("share")
    if isinstance(share, dict) and share.get("viewer_url") == VIEWER_URL_PENDING:
        from partners.models import Share
        from partners.sharing import share_viewer_url

        row = Share.objects.filter(pk=int(share.get("id") or 0)).first()
        share["viewer_url"] = share_viewer_url(row) if row is not None else None
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_enqueue(*, partner: Partner, event: str, payload: dict[str, Any]) -> WebhookMessage | None:
    """Queue a webhook to `partner` inside the caller's transaction; sent after the commit."""
    if not partner.webhook_url:
        return None
    key = uuid.uuid4().hex
    envelope = {"id": key, "event": event, "created_at": timezone.now().isoformat(), "data": payload}
    message = WebhookMessage.objects.create(
        partner=partner, event=event, payload=envelope, idempotency_key=key
    )
    transaction.on_commit(lambda: webhook_schedule(message.pk))
    return message


def webhook_schedule(message_id: int, countdown: float = 0) -> None:
    from partners.tasks import webhook_deliver

    try:
        webhook_deliver.apply_async((message_id,), countdown=countdown)
    except Exception:  # the broker is away: the sweeper finds the pending row later
        log.warning("could not enqueue webhook %s; the sweeper will", message_id, exc_info=True)


def backoff_s(attempt: int) -> float:
    """Wait before attempt `attempt + 1`: doubling from the base, capped, jittered ×0.5–1.5."""
    delay = min(settings.WEBHOOK_BACKOFF_MAX_S, settings.WEBHOOK_BACKOFF_BASE_S * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.5)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_post(*, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """One POST: connect within WEBHOOK_TIMEOUT_S, then the whole exchange within it too.

    Redirects are not followed (a webhook URL is exact). The socket timeout bounds each
    read, not the exchange: a partner answering a header line every few seconds would
    keep the attempt alive past its lease (`webhook_claim`), the sweeper would hand the
    message to another worker, and the partner would receive it twice at once. A
    watchdog cuts the connection at the deadline instead.
    """
    started = time.monotonic()
    parts = urlsplit(url)
    try:
        connection = webhook_connection(parts.scheme, parts.hostname or "", parts.port)
        if connection is None:
            return Outcome(None, "webhook URL must use https", 0)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.connect()
            with ExchangeDeadline(connection.sock, settings.WEBHOOK_TIMEOUT_S) as deadline:
                try:
                    connection.request("POST", path, body=body, headers=headers)
                    response = connection.getresponse()
                    response.read(64 * 1024)
                    status = response.status
                except (OSError, http.client.HTTPException):
                    if not deadline.passed.is_set():
                        raise
            # Cut off mid-answer, http.client may even take the cut for the end of the
            # headers: an answer that did not finish in time is never a delivery.
            if deadline.passed.is_set():
                error = f"timeout: no complete answer within {settings.WEBHOOK_TIMEOUT_S:g} s"
                return Outcome(None, error, elapsed_ms(started))
        finally:
            connection.close()
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:300], elapsed_ms(started))
    return Outcome(status, "" if 200 <= status < 300 else f"HTTP {status}", elapsed_ms(started))


def webhook_connection(scheme: str, host: str, port: int | None) -> http.client.HTTPConnection | None:
    """A connection for the URL's scheme; None for plain http when https is required."""
    timeout = settings.WEBHOOK_TIMEOUT_S
    if scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout)
    if scheme == "http" and not settings.WEBHOOK_REQUIRE_HTTPS:
        return http.client.HTTPConnection(host, port, timeout=timeout)
    return None


class ExchangeDeadline:
    """Shuts a connected socket down once `seconds` have passed, unless left before that."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.sock = sock
        self.passed = threading.Event()
        self.timer = threading.Timer(seconds, self.expire)
        self.timer.daemon = True

    def expire(self) -> None:
        self.passed.set()
        with contextlib.suppress(OSError):
            # The plain socket's shutdown, also under TLS: it wakes the blocked read with an
            # error without touching the SSL object another thread is reading through.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def __enter__(self) -> ExchangeDeadline:
        self.timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.timer.cancel()


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def webhook_headers(message: WebhookMessage, body: bytes) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": message.idempotency_key,
        "X-Webhook-Event": message.event,
    }
    secret = message.partner.signing_secret
    if secret:
        timestamp = str(int(time.time()))
        headers["X-Timestamp"] = timestamp
        headers["X-Signature"] = "sha256=" + signature_expected(secret=secret, timestamp=timestamp, body=body)
    return headers


def webhook_claim(message_id: int) -> bool:
    """Take the message for one attempt; false if delivered, given up, or another worker has it."""
    now = timezone.now()
    lease = now + dt.timedelta(seconds=2 * settings.WEBHOOK_TIMEOUT_S + 10)
    return bool(
        WebhookMessage.objects.filter(
            pk=message_id,
            state=WebhookMessage.State.PENDING,
            next_attempt_at__lte=now + dt.timedelta(seconds=1),
        )
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .update(locked_until=lease, attempts=F("attempts") + 1)
    )


def webhook_deliver(*, message_id: int) -> str:
    """Make one attempt at a message; schedule the next one if it failed. Idempotent."""
    if not webhook_claim(message_id):
        return "skipped"
    message = WebhookMessage.objects.select_related("partner").filter(pk=message_id).first()
    if message is None:
        return "gone"
    url = message.partner.webhook_url
    body = webhook_body(message)
    outcome = (
        webhook_post(url=url, body=body, headers=webhook_headers(message, body))
        if url
        else Outcome(None, "the partner has no webhook URL any more", 0)
    )
    WebhookDelivery.objects.create(
        message=message,
        attempt=message.attempts,
        url=url[:200],
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        succeeded=outcome.ok,
    )
    now = timezone.now()
    if outcome.ok:
        WebhookMessage.objects.filter(pk=message.pk).update(
            state=WebhookMessage.State.DELIVERED, delivered_at=now, locked_until=None
        )
        return "delivered"
    if message.attempts >= settings.WEBHOOK_MAX_ATTEMPTS or not url:
        WebhookMessage.objects.filter(pk=message.pk).update(
            state=WebhookMessage.State.FAILED, locked_until=None
        )
        log.warning(
            "webhook %s to %s given up after %s attempts", message.pk, message.partner.slug, message.attempts
        )
        return "failed"
    delay = backoff_s(message.attempts)
    WebhookMessage.objects.filter(pk=message.pk).update(
        next_attempt_at=now + dt.timedelta(seconds=delay), locked_until=None
    )
    webhook_schedule(message.pk, countdown=delay)
    return "retry"


def webhooks_sweep(*, older_than_s: float = 10) -> list[int]:
    """Re-enqueue pending messages nobody is working on (a lost enqueue, a killed worker)."""
    now = timezone.now()
    due = (
        WebhookMessage.objects.filter(
            state=WebhookMessage.State.PENDING, next_attempt_at__lte=now - dt.timedelta(seconds=older_than_s)
        )
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .values_list("pk", flat=True)[:500]
    )
    ids = list(due)
    for message_id in ids:
        webhook_schedule(message_id)
    return ids
