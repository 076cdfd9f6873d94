"""Pushes from request threads: handed to the serving loop, sent in order, never blocking on Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.layers import get_channel_layer

from smartcity import publisher


@pytest.fixture
def bound_publisher():
    yield
    publisher._publisher = None  # the next test's loop is another one


@pytest.mark.asyncio
async def test_pushes_from_a_request_thread_arrive_in_the_order_they_were_made(bound_publisher):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("test.publisher", channel)
    publisher.publisher_bind(asyncio.get_running_loop())

    def request_thread() -> None:
        for n in range(20):
            publisher.channel_send("test.publisher", {"type": "push", "text": str(n)})

    await asyncio.to_thread(request_thread)

    received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(20)]
    assert [message["text"] for message in received] == [str(n) for n in range(20)]
    await layer.group_discard("test.publisher", channel)


@pytest.mark.asyncio
async def test_a_request_thread_does_not_wait_for_a_slow_or_failing_redis(
    bound_publisher, monkeypatch, caplog
):
    layer = get_channel_layer()
    sent: list[str] = []

    async def slow_then_failing(sends: list[tuple[str, dict]]) -> None:
        await asyncio.sleep(0.5)
        sent.extend(message["text"] for _group, message in sends)
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(layer, "group_send_many", slow_then_failing)
    publisher.publisher_bind(asyncio.get_running_loop())

    def request_thread() -> float:
        started = time.monotonic()
        publisher.channel_send("test.publisher", {"type": "push", "text": "a"})
        publisher.channel_send("test.publisher", {"type": "push", "text": "b"})
        return time.monotonic() - started

    took = await asyncio.to_thread(request_thread)
    assert took < 0.2, "the thread went on without waiting for Redis"
    for _ in range(40):
        if len(sent) == 2:
            break
        await asyncio.sleep(0.05)
    assert sent == ["a", "b"], "every push was tried, in order"
    assert "push to test.publisher failed" in caplog.text


@pytest.mark.asyncio
async def test_without_a_serving_loop_a_push_is_sent_at_once(bound_publisher):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("test.publisher.direct", channel)
    publisher._publisher = None  # a Celery worker or a command: no serving loop to hand to

    await asyncio.to_thread(publisher.channel_send, "test.publisher.direct", {"type": "push", "text": "now"})

    received = await asyncio.wait_for(layer.receive(channel), 5)
    assert received["text"] == "now"
    await layer.group_discard("test.publisher.direct", channel)


@pytest.mark.asyncio
async def test_a_failed_batch_does_not_stop_the_pushes_after_it(bound_publisher, monkeypatch, caplog):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("test.publisher.after", channel)
    real_send_many = layer.group_send_many
    tried: list[list[str]] = []

    async def first_batch_fails(sends: list[tuple[str, dict]]) -> None:
        tried.append([message["text"] for _group, message in sends])
        if len(tried) == 1:
            raise ConnectionError("Redis went away")
        await real_send_many(sends)

    monkeypatch.setattr(layer, "group_send_many", first_batch_fails)
    publisher.publisher_bind(asyncio.get_running_loop())

    await asyncio.to_thread(publisher.channel_send, "test.publisher.after", {"type": "push", "text": "lost"})
    for _ in range(40):
        if tried:
            break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(publisher.channel_send, "test.publisher.after", {"type": "push", "text": "kept"})

    received = await asyncio.wait_for(layer.receive(channel), 5)
    assert received["text"] == "kept"
    assert tried == [["lost"], ["kept"]]
    assert "push to test.publisher.after failed (1 pushes)" in caplog.text
    await layer.group_discard("test.publisher.after", channel)
