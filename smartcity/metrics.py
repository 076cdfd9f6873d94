"""`GET /metrics`: Prometheus text exposition for monitoring, never for the public.

Counts that live in the database (incidents, events, audit entries, webhook failures)
are the same whichever instance answers. Sockets, relays and viewers are this
process's own: Prometheus scrapes every Daphne instance directly and adds the
`instance` label, which is how several processes are told apart.
Access: from METRICS_ALLOWED_IPS, or with `Authorization: Bearer <METRICS_TOKEN>`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import threading
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


class ProcessGauge:
    """A number this process keeps (open sockets, say), safe to change from any thread."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def inc(self) -> None:
        with self._lock:
            self._value += 1

    def dec(self) -> None:
        with self._lock:
            self._value -= 1

    @property
    def value(self) -> int:
        return self._value


operator_sockets = ProcessGauge()
http_busy_rejections = ProcessGauge()  # only ever goes up: a counter


def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> Iterator[str]:
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"
    for labels, value in samples:
        yield f"{name}{labels} {value:g}"


def exposition() -> Iterator[str]:
    from audit.models import AuditEntry
    from cameras.relay import relay_status
    from incidents.models import OPEN_STATUSES, Incident
    from partners.models import WebhookDelivery

    received = Incident.objects.count()
    recent = Incident.objects.filter(received_at__gte=timezone.now() - dt.timedelta(minutes=1)).count()
    open_by_status = dict(
        Incident.objects.filter(status__in=OPEN_STATUSES).values_list("status").annotate(n=Count("id"))
    )
    relays = relay_status()
    yield from metric(
        "safenet_incidents_received_total",
        "counter",
        "Incidents created from partner events.",
        [("", received)],
    )
    yield from metric(
        "safenet_events_last_minute", "gauge", "Partner events received in the last 60 s.", [("", recent)]
    )
    yield from metric(
        "safenet_incidents_open",
        "gauge",
        "Open incidents by status.",
        [(f'{{status="{status}"}}', open_by_status.get(status, 0)) for status in OPEN_STATUSES],
    )
    yield from metric(
        "safenet_audit_entries_total",
        "counter",
        "Entries in the audit chain.",
        [("", AuditEntry.objects.count())],
    )
    yield from metric(
        "safenet_operator_sockets",
        "gauge",
        "Operator sockets open on this process.",
        [("", operator_sockets.value)],
    )
    yield from metric(
        "safenet_http_busy_rejections_total",
        "counter",
        "HTTP requests this process answered 503 because their lane's threads + HTTP_QUEUE_MAX were in progress.",
        [("", http_busy_rejections.value)],
    )
    yield from metric(
        "safenet_video_relays",
        "gauge",
        "Upstream RTSP sessions of this process.",
        [("", relays["upstreams"])],
    )
    yield from metric(
        "safenet_video_relays_live", "gauge", "Relays currently receiving video.", [("", relays["live"])]
    )
    yield from metric(
        "safenet_video_viewers", "gauge", "Live video sockets on this process.", [("", relays["viewers"])]
    )
    failed = WebhookDelivery.objects.filter(succeeded=False).count()
    yield from metric(
        "safenet_webhook_failures_total", "counter", "Webhook delivery attempts that failed.", [("", failed)]
    )


def allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_IPS)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return HttpResponseForbidden("metrics are for the monitoring network\n", content_type="text/plain")
    body = "\n".join(exposition()) + "\n"
    return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")
