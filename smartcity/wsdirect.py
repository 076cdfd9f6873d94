"""WebSocket messages written straight to a Daphne connection's socket.

A message a consumer sends takes a long road under Daphne: the consumer's `send`,
Daphne's reply handling, autobahn building the frame, then Twisted's transport, which
never writes at once — it registers the socket with the reactor, waits a loop turn for
"writable", writes, and unregisters. Under the event-to-screen bench py-spy put ~15 % of
a Daphne process in that last part alone, for one push reaching 25 dashboards; a live
video frame pays the same for every viewer.

A `DirectSocket` frames the message itself (a server's frames are never masked, so a
push's frame is built once for all its sockets) and, when nothing is waiting in
Twisted's or autobahn's buffers, hands it to the kernel with one `sendmsg`. Whatever
the kernel does not take goes to Twisted's buffer, which then writes it as always,
so the bytes on the wire keep their order and a slow client only costs memory it
would have cost anyway. A socket that is closing, or served by anything but Daphne
over plain TCP (TLS in Daphne, the test communicator), gets no `DirectSocket`: callers
then send through the consumer as before.

This relies on Daphne 4.2 (`send` is `partial(server.handle_reply, protocol)`, under
Channels' session middleware's `real_send`),
autobahn's `state`/`send_queue` and Twisted's `tcp.Server` buffers (`dataBuffer`,
`_tempDataBuffer`) — versions pinned in requirements.txt; tests/test_wsdirect.py fails
if an upgrade moves them.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
_FIN = 0x80


def frame_header(length: int, *, binary: bool) -> bytes:
    """The header of a final, unmasked frame of `length` payload bytes (RFC 6455 §5.2)."""
    first = _FIN | (OPCODE_BINARY if binary else OPCODE_TEXT)
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


@functools.lru_cache(maxsize=8)
def text_frame(text: str) -> bytes:
    """A whole text frame for `text`. Cached: one push is framed once for all its sockets
    (a str caches its hash, and the same object is looked up for each socket)."""
    payload = text.encode()
    return frame_header(len(payload), binary=False) + payload


class DirectSocket:
    """Writes frames to one Daphne WebSocket connection, in order with everything else it sends."""

    __slots__ = ("protocol", "sock", "transport")

    def __init__(self, protocol: Any, transport: Any) -> None:
        self.protocol = protocol
        self.transport = transport
        self.sock = transport.socket

    @classmethod
    def of(cls, send: Any) -> DirectSocket | None:
        """The connection behind an ASGI `send` callable, if Daphne serves it over plain TCP."""
        protocol = _daphne_protocol(send)
        if protocol is None:
            return None
        transport = getattr(protocol, "transport", None)
        if _TCP_SERVER is None or type(transport) is not _TCP_SERVER:
            return None  # TLS (or anything else) in between: its own write path must do it
        return cls(protocol, transport)

    def send_frame(self, *chunks: bytes) -> bool:
        """Write one frame given as its parts (header, payload). False when the socket is no
        longer open (the frame is dropped, as Daphne would once the socket closes)."""
        protocol, transport = self.protocol, self.transport
        if protocol.state != protocol.STATE_OPEN or not transport.connected or transport.disconnecting:
            return False
        if transport.dataBuffer or transport._tempDataBuffer or protocol.send_queue:
            transport.writeSequence(chunks)  # earlier bytes still queued: keep the order
            return True
        try:
            sent = self.sock.sendmsg(chunks)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # A broken connection: let Twisted's own write find it and close as usual.
            transport.writeSequence(chunks)
            return True
        total = sum(len(chunk) for chunk in chunks)
        if sent < total:
            transport.write(b"".join(chunks)[sent:])
        return True

    def send_text(self, text: str) -> bool:
        return self.send_frame(text_frame(text))

    def send_bytes(self, data: bytes) -> bool:
        return self.send_frame(frame_header(len(data), binary=True), data)

    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel (a slow or stalled client)."""
        transport = self.transport
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def _daphne_protocol(send: Any) -> Any:
    # Channels' session middleware wraps `send` (it saves sessions on HTTP responses only;
    # a WebSocket frame passes straight through to the `real_send` it wraps).
    for _ in range(4):
        inner = getattr(getattr(send, "__self__", None), "real_send", None)
        if inner is None:
            break
        send = inner
    if not isinstance(send, functools.partial) or not send.args:
        return None
    if getattr(send.func, "__name__", "") != "handle_reply":
        return None
    protocol = send.args[0]
    if _WS_PROTOCOL is None or not isinstance(protocol, _WS_PROTOCOL):
        return None
    return protocol


def _imports() -> tuple[type | None, type | None]:
    try:
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.internet.tcp import Server
    except ImportError:  # no Daphne here (a worker process): nothing is ever direct
        return None, None
    return WebSocketProtocol, Server


_WS_PROTOCOL, _TCP_SERVER = _imports()
