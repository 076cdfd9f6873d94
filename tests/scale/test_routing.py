"""Events posted round-robin to two instances reach the right operators on both.

Extends tests/incidents/test_scale_out.py (one centre, two processes) to what a metro
deployment looks like: two centres, operators of each on both instances behind the
load balancer, an administrator watching everything, workers and beat running.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from partners.services import api_key_create
from tests.fixtures.live_server import LiveDaphne
from tests.incidents.conftest import operator_of
from tests.incidents.test_scale_out import session_cookie
from tests.partners.conftest import event_body, partner_with_agreement
from tests.scale.cluster import Cluster, Screen, SocketLoop, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CENTRE_A = ("centre-a", (126.96, 37.54, 127.03, 37.58), {"lat": 37.5663, "lon": 126.9779})
CENTRE_B = ("centre-b", (126.89, 37.36, 126.99, 37.44), {"lat": 37.4000, "lon": 126.9400})


def post_event(server: LiveDaphne, key: str, location: dict[str, float], external_id: str) -> dict[str, Any]:
    body = event_body(external_id=external_id, location=dict(location, accuracy_m=10))
    request = urllib.request.Request(  # noqa: S310 (our own test server, http only)
        f"{server.url}/api/v1/events/",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 201
        return dict(json.loads(response.read()))


def test_events_posted_round_robin_reach_only_their_centres_operators_on_both_instances(
    cluster: Cluster, sockets: SocketLoop, center_factory
):
    centre_a = center_factory(CENTRE_A[0], CENTRE_A[1])
    centre_b = center_factory(CENTRE_B[0], CENTRE_B[1])
    cookies = {
        "a": session_cookie(operator_of(centre_a, "op-a")),
        "b": session_cookie(operator_of(centre_b, "op-b")),
        "admin": session_cookie(get_user_model().objects.create_superuser("chief", password="pw-long-123")),
    }
    _, key = api_key_create(partner=partner_with_agreement("police-112", "police"))
    screens = {
        (who, n): Screen(server, cookie).open(sockets)
        for who, cookie in cookies.items()
        for n, server in enumerate(cluster.web)
    }
    for screen in screens.values():
        screen.wait_ready()

    posted: dict[str, list[int]] = {"a": [], "b": []}
    for n in range(12):
        # Round-robin over the instances; each instance takes events of both centres.
        server, centre = cluster.web[n % 2], "a" if n % 4 < 2 else "b"
        location = CENTRE_A[2] if centre == "a" else CENTRE_B[2]
        incident = post_event(server, key, location, external_id=f"rr-{n}")
        assert incident["center"] == (CENTRE_A[0] if centre == "a" else CENTRE_B[0])
        posted[centre].append(incident["id"])

    everything = sorted(posted["a"] + posted["b"])
    wait_until(
        lambda: all(len(s.created_ids()) >= (12 if who == "admin" else 6) for (who, _), s in screens.items()),
        timeout=15,
        what="every screen to receive its centre's incidents",
    )
    time.sleep(1.0)  # anything misrouted would arrive by now

    for (who, instance), screen in screens.items():
        seen = sorted(screen.created_ids())
        expected = everything if who == "admin" else sorted(posted[who])
        assert seen == expected, f"{who} on instance {instance + 1}"
