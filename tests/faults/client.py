"""A partner's HTTP client for the fault tests: plain urllib, every status returned, never raised."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.partners.conftest import event_body


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def http(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Answer:
    """One request; a refused or dropped connection is status 0 (what a partner's client sees)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (our own test server)
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, got = error.code, error.read(), dict(error.headers)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return Answer(0, None, {}, time.monotonic() - started)
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Answer(status, parsed, got, time.monotonic() - started)


@dataclass
class Partner:
    """A partner system posting to one server; signs when it has a secret, like a real one."""

    base_url: str
    key: str
    secret: str = ""

    def headers(self, body: bytes) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        if self.secret:
            stamp = str(int(time.time()))
            digest = hmac.new(self.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers |= {"X-Timestamp": stamp, "X-Signature": f"sha256={digest}"}
        return headers

    def post_event(self, external_id: str, **fields: Any) -> Answer:
        body = json.dumps(event_body(external_id=external_id, **fields)).encode()
        return http("POST", f"{self.base_url}/api/v1/events/", body=body, headers=self.headers(body))

    def get_event(self, incident_id: int) -> Answer:
        return http("GET", f"{self.base_url}/api/v1/events/{incident_id}/", headers=self.headers(b""))
