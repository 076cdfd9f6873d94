"""How relay threads hand frames to their event loop (cameras.relay.Mailbox).

One camera's frames (40 ms apart) are each handed over at once; many cameras' frames
arriving close together go over in batches, none held longer than the batch interval;
nothing is lost or reordered when several threads post at the same time.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from cameras.relay import Mailbox

BATCH_S = 0.02
SLACK_S = 0.05  # the loop's own scheduling on a shared, busy machine


class Counting:
    """The loop side: when each item arrived, and how many times the loop ran a delivery."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.delays: list[float] = []
        self.items: list[tuple[int, int]] = []
        self.deliveries = 0
        self.mailbox = mailbox
        deliver = mailbox._deliver

        def counted(timed: bool = False) -> None:
            if mailbox.items:
                self.deliveries += 1
            deliver(timed=timed)

        mailbox._deliver = counted  # type: ignore[method-assign]

    def receive(self, item: tuple[int, int, float]) -> None:
        source, sequence, posted_at = item
        self.delays.append(time.monotonic() - posted_at)
        self.items.append((source, sequence))


def post_from_threads(mailbox: Mailbox, counting: Counting, threads: int, each: int, gap_s: float) -> None:
    def run(source: int) -> None:
        for sequence in range(each):
            mailbox.post(counting.receive, (source, sequence, time.monotonic()))
            time.sleep(gap_s)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


async def cameras_posting(
    cameras: int, frames: int, gap_s: float, batch_s: float = BATCH_S
) -> tuple[Mailbox, Counting]:
    """`cameras` relay threads each posting `frames` frames `gap_s` apart to a mailbox of
    this loop, until every frame had time to be delivered."""
    mailbox = Mailbox(asyncio.get_running_loop(), batch_s=batch_s)
    counting = Counting(mailbox)
    await asyncio.to_thread(post_from_threads, mailbox, counting, cameras, frames, gap_s)
    await asyncio.sleep(max(batch_s * 3, 0.05))
    return mailbox, counting


@pytest.mark.asyncio
async def test_one_camera_frames_are_handed_over_each_at_once():
    _, counting = await cameras_posting(1, 25, 0.04)
    assert len(counting.items) == 25
    # No batching: one camera's frames each go over on their own (two may share a
    # delivery only if the loop itself was held up for a whole frame interval).
    assert counting.deliveries >= 24
    assert sorted(counting.delays)[len(counting.delays) // 2] < 0.01


@pytest.mark.asyncio
async def test_many_cameras_frames_go_over_in_batches_none_held_longer_than_the_interval():
    mailbox, counting = await cameras_posting(16, 25, 0.04)  # 400 frames a second, for 1 s
    assert len(counting.items) == 16 * 25
    for source in range(16):  # each camera's frames in their order
        assert [seq for src, seq in counting.items if src == source] == list(range(25))
    # About one delivery per interval (~50 in 1 s), not one per frame (400).
    assert counting.deliveries < 16 * 25 / 3
    assert max(counting.delays) < BATCH_S + SLACK_S

    # Sparse again: the next frame is handed over at once.
    await asyncio.sleep(BATCH_S * 3)
    assert mailbox._timer is None and not mailbox.scheduled
    before = len(counting.items)
    mailbox.post(counting.receive, (99, 0, time.monotonic()))
    await asyncio.sleep(0.005)
    assert len(counting.items) == before + 1


@pytest.mark.asyncio
async def test_without_a_batch_interval_every_frame_wakes_the_loop():
    mailbox, counting = await cameras_posting(4, 50, 0.002, batch_s=0)
    assert len(counting.items) == 200
    assert mailbox._timer is None
    assert max(counting.delays) < 0.1
