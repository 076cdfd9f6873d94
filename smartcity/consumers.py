"""What every WebSocket consumer of the project shares."""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name


class DispatchWithoutDatabase:
    """Dispatch a message straight to its handler, without a trip to the database thread first.

    Channels (4.2+) runs `close_old_connections` before every message it dispatches, in
    the one thread each process keeps for synchronous code: every push to every socket
    queued for that thread. A centre's incident reaching 50 dashboards was 50 such trips,
    and py-spy put ~23 % of a Daphne process's time there under the event-to-screen
    bench. These consumers touch the database only through `database_sync_to_async`,
    which tidies the connection around each call itself, so nothing is lost.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
