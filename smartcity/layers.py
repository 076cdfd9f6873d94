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
from typing import Any

from channels_redis import pubsub
from channels_redis.utils import decode_hosts

log = logging.getLogger(__name__)

LAYER_LOST = "layer.lost"
RETRY_AFTER_FAILURE_S = 1.0


class _Shard(pubsub.RedisSingleShardConnection):
    """One Redis connection for a process's subscriptions; says when it breaks."""

    async def _do_receiving(self) -> None:
        broken = False
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
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


class _LoopLayer(pubsub.RedisPubSubLoopLayer):
    def __init__(self, *args: Any, hosts: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, hosts=hosts, **kwargs)
        self._shards = [_Shard(host, self) for host in decode_hosts(hosts)]

    def tell_all_lost(self) -> None:
        """Queue `layer.lost` for every channel of this process (each consumer handles it)."""
        lost = self.channel_layer.serialize({"type": LAYER_LOST})
        for queue in list(self.channels.values()):
            queue.put_nowait(lost)


class PubSubChannelLayer(pubsub.RedisPubSubChannelLayer):
    """channels_redis's pub/sub layer whose per-loop layers announce a lost subscription."""

    def _get_layer(self) -> _LoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            pubsub._wrap_close(self, loop)
        return layer
