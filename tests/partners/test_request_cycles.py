"""A partner event served by Daphne's handler leaves nothing for Python's cyclic collector.

Each object a request leaves in a reference cycle waits for the cyclic collector, and
under load its runs paused a whole server process (every request in it) several times
a second, for up to tens of milliseconds. Served by `smartcity.http.PooledASGIHandler`,
a partner event's request, view, serializers, incident, cameras and share must all be
freed by reference counting the moment the response is out.
"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db.models import Model
from django.http import HttpRequest, HttpResponseBase
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from incidents.models import Incident
from smartcity.http import PooledASGIHandler
from tests.partners.conftest import SEOUL_CITY_HALL, event_body
from tests.test_http_admission import scope as http_scope

# What a request is made of: none of these may be left for the cyclic collector.
REQUEST_OBJECTS = (Model, HttpRequest, HttpResponseBase, Request, APIView, BaseSerializer)


def scope(key: str, body: bytes) -> dict[str, Any]:
    """A partner's event POST, authenticated with its key."""
    return http_scope(
        headers=[(b"authorization", f"Bearer {key}".encode()), (b"content-length", str(len(body)).encode())]
    )


async def served(handler: PooledASGIHandler, key: str, body: bytes) -> tuple[int, bytes]:
    communicator = ApplicationCommunicator(handler, scope(key, body))
    await communicator.send_input({"type": "http.request", "body": body})
    start = await communicator.receive_output(20)
    answer = await communicator.receive_output(20)
    await communicator.wait(20)
    return int(start["status"]), answer["body"]


def left_in_cycles(handler: PooledASGIHandler, key: str) -> list[str]:
    """Serve one event with the collector off; the request objects it then finds as garbage."""
    body = json.dumps(event_body(location=dict(SEOUL_CITY_HALL, accuracy_m=15))).encode()
    gc.collect()
    gc.disable()
    try:
        status, answer = asyncio.run(served(handler, key, body))
        assert status == 201, answer
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return sorted({type(o).__qualname__ for o in gc.garbage if isinstance(o, REQUEST_OBJECTS)})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.django_db(transaction=True)
def test_a_partner_event_with_its_share_leaves_no_request_object_in_a_reference_cycle(
    police, junggu, camera_factory
):
    for n in range(3):
        camera_factory(lat=SEOUL_CITY_HALL["lat"] + n * 0.0002, lon=SEOUL_CITY_HALL["lon"], center=junggu)
    handler = PooledASGIHandler()
    assert left_in_cycles(handler, police.key) == []  # the first request: caches warm up

    assert left_in_cycles(handler, police.key) == []
    incident = Incident.objects.order_by("-pk").first()
    assert incident is not None and incident.shares.count() == 1 and incident.ranked_cameras.count() == 3
    handler.shutdown()
