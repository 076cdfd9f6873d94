"""Pushes written straight to Daphne's sockets (smartcity/wsdirect.py) arrive whole and in order.

Against a real Daphne and a real client's frame parser (aiohttp): every length class of
the WebSocket header, Korean text (lengths in bytes, not characters), and a dashboard
that stops reading while megabytes are pushed — the kernel's buffer fills, the rest
waits in Twisted's — which must neither lose nor reorder its messages, nor hold up a
dashboard that reads.
"""

from __future__ import annotations

import asyncio
import inspect
import json

import aiohttp
import pytest
from channels.layers import get_channel_layer

from incidents.realtime import center_group
from smartcity import wsdirect
from tests.fixtures.live_server import LiveDaphne, live_daphne  # noqa: F401  (fixture)
from tests.incidents.conftest import operator_of
from tests.incidents.test_scale_out import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

JUNGGU = ("seoul-junggu", (126.96, 37.54, 127.03, 37.58))


@pytest.fixture
def server(live_daphne: LiveDaphne) -> LiveDaphne:  # noqa: F811
    return live_daphne


def probe(seq: int, size: int) -> str:
    """A push of about `size` bytes of UTF-8, most of it three-byte Korean characters."""
    head = json.dumps({"type": "probe", "seq": seq, "pad": ""}, ensure_ascii=False)
    pad_bytes = max(0, size - len(head.encode()))
    pad = "관" * (pad_bytes // 3) + "x" * (pad_bytes % 3)
    return json.dumps({"type": "probe", "seq": seq, "pad": pad}, ensure_ascii=False)


async def dashboard(
    http: aiohttp.ClientSession, server: LiveDaphne, cookie: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(
        f"{server.url}/ws/operator/", headers={"Cookie": cookie, "Origin": server.url}, max_msg_size=0
    )
    snapshot = await ws.receive_json(timeout=10)
    assert snapshot["type"] == "snapshot"
    return ws


async def probes_received(ws: aiohttp.ClientWebSocketResponse, count: int, timeout: float = 30) -> list[str]:
    texts: list[str] = []
    async with asyncio.timeout(timeout):
        while len(texts) < count:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, message
            if json.loads(message.data)["type"] == "probe":
                texts.append(message.data)
    return texts


async def push(group: str, text: str) -> None:
    await get_channel_layer().group_send(group, {"type": "push", "text": text})


def test_every_frame_length_arrives_intact_and_in_order(server, center_factory):
    centre = center_factory(*JUNGGU)
    cookie = session_cookie(operator_of(centre, "op-frames"))
    # 7-bit, 16-bit and 64-bit payload lengths, each at its edges.
    sizes = [40, 125, 126, 127, 65_535, 65_536, 65_537, 1_000_000, 60]
    sent = [probe(seq, size) for seq, size in enumerate(sizes)]

    async def scenario() -> list[str]:
        async with aiohttp.ClientSession() as http:
            ws = await dashboard(http, server, cookie)
            await asyncio.sleep(0.3)  # the consumer registers its direct writes after the snapshot
            for text in sent:
                await push(center_group(centre.pk), text)
            received = await probes_received(ws, len(sent))
            await ws.close()
            return received

    received = asyncio.run(scenario())

    assert [len(t.encode()) for t in received] == [len(t.encode()) for t in sent]
    assert received == sent


def test_a_dashboard_that_stops_reading_loses_nothing_and_holds_up_nobody(server, center_factory):
    centre = center_factory(*JUNGGU)
    stalled_cookie = session_cookie(operator_of(centre, "op-stalled"))
    reading_cookie = session_cookie(operator_of(centre, "op-reading"))
    # 24 MB: far more than loopback's socket buffers, so most of it waits in Twisted's.
    sent = [probe(seq, 1_000_000) for seq in range(24)]

    async def scenario() -> tuple[list[str], list[str]]:
        async with aiohttp.ClientSession() as http, aiohttp.ClientSession() as other:
            stalled = await dashboard(http, server, stalled_cookie)
            reading = await dashboard(other, server, reading_cookie)
            await asyncio.sleep(0.3)
            for text in sent:
                await push(center_group(centre.pk), text)
            # The reading dashboard gets everything while the other reads nothing at all.
            on_time = await probes_received(reading, len(sent), timeout=30)
            late = await probes_received(stalled, len(sent), timeout=60)
            await stalled.close()
            await reading.close()
            return on_time, late

    on_time, late = asyncio.run(scenario())

    assert on_time == sent
    assert late == sent


def test_the_daphne_twisted_and_autobahn_internals_relied_on_are_still_there():
    """An upgrade that moves them would silently send every push the slow way (or worse)."""
    from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
    from daphne.server import Server as DaphneServer
    from twisted.internet import abstract

    assert "partial(self.handle_reply, protocol)" in inspect.getsource(DaphneServer.create_application)
    assert wsdirect._WS_PROTOCOL is not None and wsdirect._TCP_SERVER is not None
    descriptor_source = inspect.getsource(abstract.FileDescriptor)
    for attribute in ("self.dataBuffer", "self._tempDataBuffer", "self._tempDataLen", "self.offset"):
        assert attribute in descriptor_source
    assert "self.send_queue" in inspect.getsource(AutobahnProtocol.sendData)
    assert AutobahnProtocol.STATE_OPEN is not None


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65_535, 65_536, 2**32])
def test_frame_headers_encode_the_payload_length_as_rfc_6455_says(length):
    header = wsdirect.frame_header(length, binary=True)
    assert header[0] == 0x82  # FIN, binary; server frames are never masked
    indicator = header[1]
    assert indicator & 0x80 == 0
    if length < 126:
        assert (len(header), indicator) == (2, length)
    elif length < 65_536:
        assert (len(header), indicator, int.from_bytes(header[2:4], "big")) == (4, 126, length)
    else:
        assert (len(header), indicator, int.from_bytes(header[2:10], "big")) == (10, 127, length)
