"""The channel layer: Redis pub/sub, one delivery per process, and an outage nobody misses.

channels_redis's core layer keeps one Redis list per socket: a push to a centre's fifty
dashboards is fifty writes, and fifty reads in the processes holding them. Its pub/sub
layer publishes once; each process with a subscriber receives the message once and
fans it out in memory. That is what lets one incident reach a hundred screens in time.

Pub/sub has one weakness for a control room: a message published while Redis is away,
or while a process's subscription is broken, is simply gone, and redis-py re-subscribes
by itself afterwards, so nothing would ever say so. Here the process that loses its
subscription tells every socket it holds, as an ordinary message (`layer.lost`):
dashboards close and reconnect (their snapshot brings what they missed), video viewers
re-check that they may still watch (a revocation may have been lost). Channels whose
receive fails are told the same way.

Built on channels_redis 4.3's pub/sub classes (pinned in requirements.txt); the fault
suite (tests/faults/test_redis_down.py) fails if an upgrade changes what is relied on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from channels_redis import pubsub
from channels_redis.utils import decode_hosts

log = logging.getLogger(__name__)

LAYER_LOST = "layer.lost"
# A consumer's synchronous handler of its groups' messages: True when it took the message.
DirectHandler = Callable[[dict[str, Any]], bool]
RETRY_AFTER_FAILURE_S = 1.0


class _Shard(pubsub.RedisSingleShardConnection):
    """One Redis connection for a process's subscriptions; says when it breaks."""

    async def _do_receiving(self) -> None:
        broken = False
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if broken:
                        broken = False
                        log.info("channel layer: subscriptions restored")
                    self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away (or a broken connection): tell every socket
                if not broken:
                    log.warning("channel layer: subscriptions lost (%s)", type(exc).__name__)
                    broken = True
                # Told every time it fails: a socket that joined in between hears it too.
                self.channel_layer.tell_all_lost()
                await asyncio.sleep(RETRY_AFTER_FAILURE_S)

    async def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        """PUBLISH each (channel, data) in order, in one round trip to Redis."""
        async with self._lock:
            self._ensure_redis()
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, data in items:
                    pipe.publish(channel, data)
                await pipe.execute()

    def _receive_message(self, message: Any) -> None:
        """A group's message is decoded once for the process, and offered to each member's
        direct handler first (see `PubSubChannelLayer.direct_add`); the rest are queued."""
        if message is None:
            return
        layer = self.channel_layer
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        members = layer.groups.get(name)
        if members is None or not layer.direct:
            super()._receive_message(message)
            return
        data = message["data"]
        decoded = None
        for channel in list(members):
            queue = layer.channels.get(channel)
            if queue is None:  # its consumer is gone
                layer.direct.pop(channel, None)
                continue
            handler = layer.direct.get(channel)
            if handler is not None:
                if decoded is None:
                    decoded = layer.channel_layer.deserialize(data)
                if layer.direct_deliver(handler, decoded):
                    continue
            queue.put_nowait(data)


class _LoopLayer(pubsub.RedisPubSubLoopLayer):
    def __init__(self, *args: Any, hosts: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, hosts=hosts, **kwargs)
        self._shards = [_Shard(host, self) for host in decode_hosts(hosts)]
        # channel → its consumer's synchronous handler for group messages (direct_add)
        self.direct: dict[str, DirectHandler] = {}

    @staticmethod
    def direct_deliver(handler: DirectHandler, message: dict[str, Any]) -> bool:
        try:
            return handler(message)
        except Exception:  # a handler's bug must not stop the other sockets' delivery
            log.exception("direct delivery failed; the message goes through the consumer")
            return False

    def tell_all_lost(self) -> None:
        """Queue `layer.lost` for every channel of this process (each consumer handles it)."""
        lost = self.channel_layer.serialize({"type": LAYER_LOST})
        for queue in list(self.channels.values()):
            queue.put_nowait(lost)


class PubSubChannelLayer(pubsub.RedisPubSubChannelLayer):
    """channels_redis's pub/sub layer whose per-loop layers announce a lost subscription.

    A consumer may also take its groups' messages directly (`direct_add`): when a push
    arrives, the process calls each such consumer's handler in turn, synchronously, instead
    of waking one task per socket to receive, decode and dispatch the same message (~11 %
    of a Daphne process under the event-to-screen bench). A handler returns False for a
    message it leaves to the consumer's ordinary dispatch.
    """

    def direct_add(self, channel: str, handler: DirectHandler) -> None:
        """From now on offer `channel`'s group messages to `handler` first (on the loop).

        What is already queued for the channel is offered too, oldest first, so nothing
        the handler takes overtakes a message queued before it was added.
        """
        layer = self._get_layer()
        queue = layer.channels.get(channel)
        if queue is not None:
            kept = []
            while not queue.empty():
                data = queue.get_nowait()
                if not layer.direct_deliver(handler, self.deserialize(data)):
                    kept.append(data)
            for data in kept:
                queue.put_nowait(data)
        layer.direct[channel] = handler

    async def group_send_many(self, sends: list[tuple[str, dict[str, Any]]]) -> None:
        """`group_send` for each (group, message), in order, one round trip per Redis shard.

        A busy process's event loop may take milliseconds per turn (its request threads
        hold the GIL); one push per round trip then capped how many pushes per second
        left it, and dashboards fell seconds behind at 100 events/s.
        """
        layer = self._get_layer()
        by_shard: dict[_Shard, list[tuple[str, bytes]]] = {}
        for group, message in sends:
            channel = layer._get_group_channel_name(group)
            by_shard.setdefault(layer._get_shard(channel), []).append((channel, self.serialize(message)))
        for shard, items in by_shard.items():
            await shard.publish_many(items)

    def direct_discard(self, channel: str) -> None:
        self._get_layer().direct.pop(channel, None)

    def _get_layer(self) -> _LoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            pubsub._wrap_close(self, loop)
        return layer
