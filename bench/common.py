"""What every benchmark section shares: figures with targets, timing and printing."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Target:
    """A bound a figure must meet: `op` is "<=" (at most) or ">=" (at least)."""

    op: Literal["<=", ">="]
    limit: float

    def met_by(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit


@dataclass(frozen=True)
class Figure:
    """One measured number; those with a target are judged PASS or MISS in the summary."""

    name: str
    value: float
    unit: str
    target: Target | None = None

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.met_by(self.value)

    def shown(self) -> str:
        return f"{fmt(self.value)} {self.unit}".rstrip()

    def target_shown(self) -> str:
        if self.target is None:
            return ""
        op = "≤" if self.target.op == "<=" else "≥"
        return f"{op} {fmt(self.target.limit)} {self.unit}".rstrip()


def fmt(value: float) -> str:
    """Three significant-ish digits: enough to compare runs, not noise."""
    if math.isnan(value) or math.isinf(value):
        return "none"  # nothing measured (e.g. no request succeeded): the errors say why
    if value == int(value) and (abs(value) >= 1 or value == 0):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def time_ms(call: Callable[[], object]) -> float:
    """Wall time of one call in milliseconds."""
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def percentile(samples: list[float], pct: int) -> float:
    """The pct-th percentile (1–99), interpolated between samples."""
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


async def paced(rate: float, count: int) -> AsyncIterator[tuple[int, float]]:
    """`count` numbers at `rate` per second by the clock (open loop), each with its scheduled time.

    The caller starts each request as a task and takes the next number at once: nothing
    waits for an answer, so a slow server builds a backlog instead of slowing the load.
    """
    begin = time.perf_counter() + 0.05
    for number in range(count):
        scheduled = begin + number / rate
        if (delay := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        yield number, scheduled


def header(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def report(label: str, text: str) -> None:
    """One line of a section's output, aligned so runs are easy to compare by eye."""
    print(f"  {label:<44} {text}", flush=True)


def report_figure(figure: Figure) -> None:
    target = f"   (target {figure.target_shown()})" if figure.target else ""
    report(figure.name, figure.shown() + target)
