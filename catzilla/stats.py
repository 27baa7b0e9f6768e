"""Request statistics across all workers, in a shared-memory block (see ext/stats.c).

The master creates the block before it forks (a file in /dev/shm, so `catzilla stats` can
open it from outside); `app.listen()` makes a private one. Each worker writes its own slot
from C; anyone reads the sums.
"""
from __future__ import annotations

import glob
import mmap
import os
import tempfile
import typing

from ._native import STATS_BUCKETS, StatsBlock, WorkerSlot

__all__ = ["StatsBoard", "RouteTotals", "percentile", "BUCKETS", "WorkerSlot", "board_path"]

BUCKETS = STATS_BUCKETS
# Routes ever seen, across reloads, that the retired totals can tell apart.
RETIRED_FACTOR = 4


def _directory() -> str:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def board_path(master_pid: int) -> str:
    return os.path.join(_directory(), f"catzilla-{master_pid}.stats")


def _alive(path: str) -> bool:
    """Is the master that made this file still running? (A SIGKILLed one leaves it.)"""
    try:
        pid = int(os.path.basename(path)[len("catzilla-"):-len(".stats")])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True  # not ours to judge: another user's server is running
    return True


def find_boards() -> list[str]:
    """Stats files of running servers, newest first."""
    paths = [p for p in glob.glob(os.path.join(_directory(), "catzilla-*.stats")) if _alive(p)]
    return sorted(paths, key=os.path.getmtime, reverse=True)


class StatsBoard:
    def __init__(self, mapping: mmap.mmap, block: StatsBlock, path: str | None) -> None:
        self._mapping = mapping
        self.block = block
        self.path = path

    @classmethod
    def create(cls, nslots: int, nroutes: int, path: str | None = None) -> "StatsBoard":
        nroutes = max(1, nroutes)
        size = StatsBlock.size(nslots, nroutes, nroutes * RETIRED_FACTOR)
        if path is None:
            mapping = mmap.mmap(-1, size)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, size)
                mapping = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        block = StatsBlock(mapping, nslots, nroutes, nroutes * RETIRED_FACTOR, True)
        return cls(mapping, block, path)

    @classmethod
    def open(cls, path: str) -> "StatsBoard":
        fd = os.open(path, os.O_RDWR)
        try:
            mapping = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        return cls(mapping, StatsBlock(mapping), path)

    @property
    def nslots(self) -> int:
        return self.block.nslots

    def attach(self, slot: int, generation: int, routes: list[tuple[str, bool]]) -> WorkerSlot:
        return self.block.attach(slot, os.getpid(), generation, routes)

    def retire(self, slot: int) -> None:
        if slot < self.block.nslots:
            self.block.retire(slot)

    def snapshot(self) -> dict[str, typing.Any]:
        return self.block.snapshot()

    def totals(self) -> tuple[int, int, int, int]:
        return self.block.totals()

    def unlink(self) -> None:
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


class RouteTotals:
    """One route's counts summed over workers (live and retired)."""

    __slots__ = ("key", "kind", "requests", "errors", "in_flight", "blocked", "duration_us", "histogram")

    def __init__(self, key: str, kind: str) -> None:
        self.key, self.kind = key, kind
        self.requests = self.errors = self.in_flight = self.blocked = self.duration_us = 0
        self.histogram = [0] * BUCKETS

    def add(self, row: tuple[typing.Any, ...]) -> None:
        _, _, requests, errors, in_flight, blocked, duration_us, histogram = row
        self.requests += requests
        self.errors += errors
        self.in_flight += in_flight
        self.blocked += blocked
        self.duration_us += duration_us
        self.histogram = [a + b for a, b in zip(self.histogram, histogram)]


def merge_routes(snapshot: dict[str, typing.Any]) -> dict[str, RouteTotals]:
    routes: dict[str, RouteTotals] = {}
    rows = [row for slot in snapshot["slots"] for row in slot["routes"]] + snapshot["retired_routes"]
    for row in rows:
        key = row[0]
        totals = routes.get(key)
        if totals is None:
            totals = routes[key] = RouteTotals(key, "async" if row[1] else "sync")
        totals.add(row)
    return routes


def bucket_upper_ms(bucket: int) -> float:
    """Bucket b holds latencies below 2**b µs."""
    return (1 << bucket) / 1000.0


def percentile(histogram: typing.Sequence[int], fraction: float) -> float | None:
    """The `fraction` quantile in milliseconds, interpolated linearly inside its bucket
    (as Prometheus' histogram_quantile does): a log2 bucket is a factor of 2 wide."""
    total = sum(histogram)
    if not total:
        return None
    rank = fraction * total
    seen = 0
    for bucket, count in enumerate(histogram):
        if count and seen + count >= rank:
            lower = bucket_upper_ms(bucket - 1) if bucket else 0.0
            upper = bucket_upper_ms(bucket)
            return round(lower + (upper - lower) * (rank - seen) / count, 3)
        seen += count
    return bucket_upper_ms(len(histogram) - 1)
