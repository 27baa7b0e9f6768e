"""Request counters of this worker process.

Counters are plain integer attributes bumped on the event loop thread (the only writer), so
they need no lock. Latency goes into a log2 histogram of microseconds: 32 buckets cover 1 µs
to over an hour with a fixed, tiny cost per request.
"""
from __future__ import annotations

import os
import time
import typing

__all__ = ["RouteStats", "WorkerStats", "percentile"]

BUCKETS = 32


class RouteStats:
    __slots__ = ("key", "kind", "requests", "errors", "in_flight", "histogram")

    def __init__(self, key: str, kind: str) -> None:
        self.key = key
        self.kind = kind
        self.requests = 0
        self.errors = 0
        self.in_flight = 0
        self.histogram = [0] * BUCKETS

    def record(self, seconds: float, status: int) -> None:
        self.requests += 1
        if status >= 500:
            self.errors += 1
        bucket = int(seconds * 1_000_000).bit_length()
        self.histogram[bucket if bucket < BUCKETS else BUCKETS - 1] += 1


def percentile(histogram: typing.Sequence[int], fraction: float) -> float | None:
    """The upper bound, in milliseconds, of the bucket holding the `fraction` quantile."""
    total = sum(histogram)
    if not total:
        return None
    rank = fraction * total
    seen = 0
    for bucket, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return (1 << bucket) / 1000.0
    return (1 << (len(histogram) - 1)) / 1000.0


class WorkerStats:
    """Everything this process counts; `snapshot()` is the stats contract's raw material."""

    def __init__(self, routes: typing.Iterable[typing.Any] = ()) -> None:
        self.pid = os.getpid()
        self.started = time.time()
        self.routes: list[RouteStats] = [route.stats for route in routes]
        self.bytes_in = 0
        self.bytes_out = 0
        self.loop_lag = 0.0  # seconds, the last measured scheduling delay of the loop
        self.loop_lag_max = 0.0
        self.pool: typing.Any = None  # the worker's ThreadPool, for size/busy/queued
        self._second_counts: list[tuple[int, int]] = []  # (unix second, total requests)

    @property
    def requests(self) -> int:
        return sum(route.requests for route in self.routes)

    @property
    def in_flight(self) -> int:
        return sum(route.in_flight for route in self.routes)

    def uptime(self) -> float:
        return time.time() - self.started

    def tick(self) -> None:
        """Once a second, from the loop: remember totals for requests-per-second."""
        self._second_counts.append((int(time.time()), self.requests))
        del self._second_counts[:-61]

    def requests_per_second(self, window: int = 10) -> float:
        counts = self._second_counts
        if len(counts) < 2:
            return 0.0
        first = counts[max(0, len(counts) - 1 - window)]
        last = counts[-1]
        return (last[1] - first[1]) / max(1, last[0] - first[0])
