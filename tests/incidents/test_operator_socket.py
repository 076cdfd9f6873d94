"""`/ws/operator/`: who may listen, what they hear, and only ever after the commit."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.db import connections, transaction

from incidents.consumers import OperatorConsumer
from incidents.realtime import incident_publish_on_commit
from tests.incidents.conftest import incident_at, operator_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest_asyncio.fixture(autouse=True)
async def close_connections():
    # Connections opened by database_sync_to_async threads would keep the test
    # database busy and make its teardown warn (STACK-NOTES).
    yield
    await sync_to_async(connections.close_all)()


async def connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(OperatorConsumer.as_asgi(), "/ws/operator/")
    communicator.scope["user"] = user
    return communicator


async def test_anonymous_is_refused():
    communicator = await connect(AnonymousUser())
    connected, code = await communicator.connect()
    assert connected is False
    assert code == 4401


async def test_user_without_a_centre_role_is_refused(two_centres):
    from django.contrib.auth import get_user_model

    nobody = await database_sync_to_async(get_user_model().objects.create_user)("nobody", password="x" * 12)
    communicator = await connect(nobody)
    connected, code = await communicator.connect()
    assert (connected, code) == (False, 4403)


async def test_operator_gets_a_snapshot_of_their_centres_open_incidents(two_centres):
    a, b = two_centres
    mine = await database_sync_to_async(incident_at)(a)
    await database_sync_to_async(incident_at)(b)
    user = await database_sync_to_async(operator_of)(a, "op-a")

    communicator = await connect(user)
    connected, _ = await communicator.connect()
    snapshot = await communicator.receive_json_from(timeout=5)

    assert connected
    assert snapshot["type"] == "snapshot"
    assert [i["id"] for i in snapshot["incidents"]] == [mine.pk]
    await communicator.disconnect()


async def test_operator_of_centre_a_never_receives_centre_bs_messages(two_centres):
    a, b = two_centres
    user_a = await database_sync_to_async(operator_of)(a, "op-a")
    user_b = await database_sync_to_async(operator_of)(b, "op-b")
    sock_a, sock_b = await connect(user_a), await connect(user_b)
    await sock_a.connect()
    await sock_b.connect()
    await sock_a.receive_json_from(timeout=5)  # snapshots
    await sock_b.receive_json_from(timeout=5)

    def create_in_b():
        with transaction.atomic():
            incident = incident_at(b)
            incident_publish_on_commit("incident.created", incident.pk)
        return incident

    incident = await database_sync_to_async(create_in_b)()

    message = await sock_b.receive_json_from(timeout=5)
    assert message["type"] == "incident.created"
    assert message["incident"]["id"] == incident.pk
    assert "stream_url" not in str(message)
    assert await sock_a.receive_nothing(timeout=0.5)
    await sock_a.disconnect()
    await sock_b.disconnect()


async def test_a_rolled_back_incident_is_never_pushed(two_centres):
    a, _ = two_centres
    user = await database_sync_to_async(operator_of)(a, "op-a")
    sock = await connect(user)
    await sock.connect()
    await sock.receive_json_from(timeout=5)

    def create_then_roll_back():
        try:
            with transaction.atomic():
                incident = incident_at(a)
                incident_publish_on_commit("incident.created", incident.pk)
                raise RuntimeError("something failed after the insert")
        except RuntimeError:
            pass

    await database_sync_to_async(create_then_roll_back)()

    assert await sock.receive_nothing(timeout=0.7)
    await sock.disconnect()


async def test_push_arrives_only_once_the_transaction_commits(two_centres):
    a, _ = two_centres
    user = await database_sync_to_async(operator_of)(a, "op-a")
    sock = await connect(user)
    await sock.connect()
    await sock.receive_json_from(timeout=5)
    committed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_transaction():
        with transaction.atomic():
            incident = incident_at(a)
            incident_publish_on_commit("incident.created", incident.pk)
            import time

            time.sleep(0.6)  # nothing may be pushed while the row is still uncommitted
            loop.call_soon_threadsafe(committed.set)
        return incident

    task = asyncio.ensure_future(database_sync_to_async(slow_transaction)())
    assert await sock.receive_nothing(timeout=0.4)
    message = await sock.receive_json_from(timeout=5)
    assert committed.is_set()
    assert message["incident"]["id"] == (await task).pk
    await sock.disconnect()


async def test_logout_everywhere_closes_the_open_dashboard_socket(two_centres):
    from cameras.sessions import sessions_end_all

    a, _ = two_centres
    user = await database_sync_to_async(operator_of)(a, "op-a")
    sock = await connect(user)
    await sock.connect()
    await sock.receive_json_from(timeout=5)

    await database_sync_to_async(sessions_end_all)(user=user)

    closed = await sock.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_a_push_reaches_the_dashboard_while_the_process_sync_thread_is_busy(two_centres):
    # Channels would first queue a database tidy-up for every dispatched message in the
    # process's one sync thread: a slow query anywhere there would hold every push back.
    import json
    import time

    from channels.layers import get_channel_layer

    from incidents.realtime import center_group

    a, _ = two_centres
    user = await database_sync_to_async(operator_of)(a, "op-a")
    sock = await connect(user)
    await sock.connect()
    await sock.receive_json_from(timeout=5)
    busy = asyncio.ensure_future(sync_to_async(time.sleep, thread_sensitive=True)(3))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await get_channel_layer().group_send(
        center_group(a.pk), {"type": "push", "text": json.dumps({"type": "incident.updated", "incident": {}})}
    )
    message = await sock.receive_json_from(timeout=2)
    assert message["type"] == "incident.updated"
    assert time.monotonic() - started < 1.0
    assert not busy.done()  # it really was busy all along
    await busy
    await sock.disconnect()


async def test_dashboards_reconnecting_at_once_share_snapshots_and_each_sees_the_queue(
    two_centres, monkeypatch
):
    from incidents import consumers

    a, _ = two_centres
    mine = await database_sync_to_async(incident_at)(a)
    users = [await database_sync_to_async(operator_of)(a, f"op-{n}") for n in range(8)]
    reads = []
    real = consumers.snapshot_of

    def counted(centers):
        reads.append(centers)
        return real(centers)

    monkeypatch.setattr(consumers, "snapshot_of", counted)
    socks = [await connect(user) for user in users]
    await asyncio.gather(*(sock.connect() for sock in socks))
    snapshots = await asyncio.gather(*(sock.receive_json_from(timeout=10) for sock in socks))

    assert all([i["id"] for i in snap["incidents"]] == [mine.pk] for snap in snapshots)
    assert 1 <= len(reads) < len(socks), reads  # shared, not one read per dashboard
    for sock in socks:
        await sock.disconnect()


async def test_a_snapshot_read_is_shared_only_with_sockets_subscribed_before_it_began(monkeypatch):
    import threading
    import time

    from incidents import consumers

    began = threading.Event()
    release = threading.Event()
    reads = []

    def slow_read(centers):
        reads.append(centers)
        number = len(reads)
        began.set()
        release.wait(10)
        return {"type": "snapshot", "incidents": [number]}

    monkeypatch.setattr(consumers, "snapshot_of", slow_read)
    early = time.monotonic()
    first = asyncio.ensure_future(consumers.snapshot_shared([1], subscribed_at=early))
    await asyncio.to_thread(began.wait, 10)  # the read has begun
    shared = asyncio.ensure_future(
        consumers.snapshot_shared([1], subscribed_at=early)
    )  # subscribed before: shares
    await asyncio.sleep(0)
    late = asyncio.ensure_future(
        consumers.snapshot_shared([1], subscribed_at=time.monotonic())
    )  # after: a new read
    await asyncio.sleep(0)
    also_late = asyncio.ensure_future(
        consumers.snapshot_shared([1], subscribed_at=time.monotonic())
    )  # joins the queued one
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(first, shared, late, also_late)
    assert [r["incidents"] for r in results] == [[1], [1], [2], [2]]
    assert len(reads) == 2
