"""Request statistics across all workers, in a shared-memory block (see ext/stats.c).

The master creates the block before it forks (a file in /dev/shm, so `catzilla stats` can
open it from outside); `app.listen()` makes a private one. Each worker writes its own slot
from C; anyone reads the sums.

/dev/shm is writable by every user and the file's name is predictable, so the file is made
with O_EXCL|O_NOFOLLOW, mode 0600 (nothing planted there is adopted or followed), and
readers open only a regular file of ours (or root's) that nobody else may write. The master
holds an flock on its file for as long as it (or a worker forked from it) lives, so the
next master can tell the file of one killed with -9 (lock free: removed) from that of a live
one in another PID namespace sharing /dev/shm (lock held: its pid means nothing here). A
name taken by anything else is left alone, and that master runs without a shared block.

What is read from the block is only numbers another process wrote: the C reader checks
the dimensions once and bounds every index; a reader on a worker's event loop waits at
most LOOP_READ_PATIENCE for a consistent view and otherwise serves the last one it had.
"""
from __future__ import annotations

import errno
import fcntl
import glob
import logging
import mmap
import os
import stat
import tempfile
import typing

from ._native import STATS_BUCKETS, STATS_HEADER_BYTES, StatsBlock, WorkerSlot

__all__ = ["StatsBoard", "RouteTotals", "percentile", "BUCKETS", "WorkerSlot", "board_path", "UNMATCHED_KEY",
           "KIND_SYNC", "KIND_ASYNC", "KIND_CPU_LANE", "ROLE_WORKER", "ROLE_LANE", "worker_slots", "lane_slots",
           "websocket_totals"]

BUCKETS = STATS_BUCKETS
# The stats row, after the app's routes, of requests no route answered (404, 405, health,
# readiness and metrics probes, refused requests): with it the counts add up to the access log.
UNMATCHED_KEY = "* <unmatched>"
# A route's kind in the block (its handler runs in the pool, on the loop, in the CPU lane),
# and a slot's role (a worker serving HTTP, or a CPU-lane process whose jobs the workers count).
KIND_SYNC, KIND_ASYNC, KIND_CPU_LANE = 0, 1, 2
KIND_NAMES = {KIND_SYNC: "sync", KIND_ASYNC: "async", KIND_CPU_LANE: "cpu_lane"}
ROLE_WORKER, ROLE_LANE = 0, 1
# A sync route is `cpu_bound` when at least this share of its handler's wall time is CPU time
# of its own thread: it computes rather than waits. Not "most": the wall time also holds the
# waits for the GIL (a handler computing beside another measures about half, beside two a
# third) and for a core on a busy machine (a fifth and less was measured here with 2 cores
# and a load of 7), while one that waits on I/O (a query, a call, a sleep) measures well
# under a tenth: its wait takes milliseconds, the Python around it microseconds.
CPU_BOUND_SHARE = 0.1
# ...and a call takes at least this much CPU on average: below it the handler gives the GIL
# back sooner than the loop would notice (a loop tick costs tens of µs; a trivial `def`
# returning a dict is all CPU, and harmless).
CPU_BOUND_MIN_MS = 1.0
# Routes ever seen, across reloads, that the retired totals can tell apart.
RETIRED_FACTOR = 4
# How long a read from a worker's event loop waits for a fold in progress: a fold takes tens
# of µs, so this covers it with room to spare while costing the loop less than a millisecond;
# longer means the folder was preempted or died, or the file was tampered with.
LOOP_READ_PATIENCE = 0.0005
# Creating the file: once more after removing a stale file found at the name (or after
# another master swept ours away between its creation and our lock).
CREATE_ATTEMPTS = 2
# Who may own a stats file we read: the user we run as, or root.
TRUSTED_OWNERS = (os.geteuid(), 0)

logger = logging.getLogger("catzilla.stats")


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


def _open_trusted(path: str) -> tuple[int, os.stat_result]:
    """Open a stats file to read: never through a symlink, and only a regular file of ours
    (or root's) that no one else may write, long enough for a header. Raises OSError or
    ValueError naming the reason."""
    try:
        # O_NONBLOCK: a FIFO planted at the name must not hang the reader.
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{path} is a symbolic link; refusing it") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file; refusing it")
        if info.st_uid not in TRUSTED_OWNERS:
            raise ValueError(f"{path} belongs to uid {info.st_uid}, not to us; refusing it")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ValueError(f"{path} is writable by others (mode {stat.S_IMODE(info.st_mode):o}); refusing it")
        if info.st_size < STATS_HEADER_BYTES:
            raise ValueError(f"{path} is too short for a stats block; refusing it")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def find_boards() -> list[str]:
    """Stats files of running servers that we may read, newest first."""
    found = []
    for path in glob.glob(os.path.join(_directory(), "catzilla-*.stats")):
        if not _alive(path):
            continue
        try:
            fd, info = _open_trusted(path)
        except (OSError, ValueError):
            continue
        os.close(fd)
        found.append((info.st_mtime, path))
    return [path for _, path in sorted(found, reverse=True)]


def _same_file(path: str, fd: int) -> bool:
    """Does `path` still name the file open as `fd`?"""
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _remove_if_stale(path: str) -> bool:
    """Remove the file at `path` if it is a regular file of ours whose master is gone (its
    lock is free). True if the name is free now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:  # a symlink (ELOOP), someone else's file (EACCES): not ours to remove
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live master (or its workers) holds it
        if not _same_file(path, fd):
            return False
        os.unlink(path)
        return True
    finally:
        os.close(fd)


def remove_stale_boards() -> int:
    """Delete the files of masters that died without cleaning up (SIGKILL): each holds memory
    in /dev/shm. A file is stale when its master's lock is free and its pid is gone here too
    (a master of an older version, without the lock, may still be running). Returns how many
    were removed."""
    removed = 0
    for path in glob.glob(os.path.join(_directory(), "catzilla-*.stats")):
        if not _alive(path) and _remove_if_stale(path):
            removed += 1
    return removed


def _create_file(path: str, size: int) -> int:
    """A new file of `size` bytes at `path`, private to us and locked for our lifetime."""
    for attempt in range(CREATE_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            if attempt + 1 < CREATE_ATTEMPTS and _remove_if_stale(path):
                logger.info("removed a stale stats file at %s", path)
                continue
            raise FileExistsError(errno.EEXIST, "the name is taken by a file that is not a stale "
                                  "stats file of ours; leaving it alone", path) from None
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel when we are all gone
            if not _same_file(path, fd):  # swept by another master before we locked it
                os.close(fd)
                continue
            os.ftruncate(fd, size)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise FileExistsError(errno.EEXIST, "could not create the stats file", path)


class StatsBoard:
    def __init__(self, mapping: mmap.mmap, block: StatsBlock, path: str | None,
                 fd: int = -1, patience: float | None = None) -> None:
        self._mapping = mapping
        self.block = block
        self.path = path
        self._fd = fd  # the creator's: it holds the file's lock
        self._patience = patience  # None: the C reader's default (about a second)
        self._last: dict[str, typing.Any] | None = None  # the last consistent snapshot
        self._stuck = False  # the last read found the block mid-fold for too long

    @classmethod
    def create(cls, nslots: int, nroutes: int, path: str | None = None) -> "StatsBoard":
        nroutes = max(1, nroutes)
        size = StatsBlock.size(nslots, nroutes, nroutes * RETIRED_FACTOR)
        if path is None:
            mapping = mmap.mmap(-1, size)
            return cls(mapping, StatsBlock(mapping, nslots, nroutes, nroutes * RETIRED_FACTOR, True), None)
        fd = _create_file(path, size)
        try:
            mapping = mmap.mmap(fd, size)
            block = StatsBlock(mapping, nslots, nroutes, nroutes * RETIRED_FACTOR, True)
        except BaseException:
            os.unlink(path)
            os.close(fd)
            raise
        return cls(mapping, block, path, fd)

    @classmethod
    def open(cls, path: str) -> "StatsBoard":
        fd, info = _open_trusted(path)
        try:
            mapping = mmap.mmap(fd, info.st_size)
        finally:
            os.close(fd)
        return cls(mapping, StatsBlock(mapping), path)

    def on_event_loop(self) -> "StatsBoard":
        """The same block, for reads from a worker's event loop: they never wait longer than
        LOOP_READ_PATIENCE (see snapshot() and totals())."""
        return StatsBoard(self._mapping, self.block, self.path, patience=LOOP_READ_PATIENCE)

    @property
    def nslots(self) -> int:
        return self.block.nslots

    def attach(self, slot_index: int, generation: int, routes: list[tuple[str, bool]]) -> WorkerSlot:
        return self.block.attach(slot_index, os.getpid(), generation, routes)

    def retire(self, slot_index: int) -> None:
        if slot_index < self.block.nslots:
            self.block.retire(slot_index)

    def _read(self, method: typing.Callable[..., typing.Any]) -> typing.Any:
        return method() if self._patience is None else method(self._patience)

    def snapshot(self) -> dict[str, typing.Any]:
        """A consistent view; while the block stays mid-fold longer than our patience, the
        last consistent one (said once in the log, not on every read)."""
        try:
            snapshot = self._read(self.block.snapshot)
        except RuntimeError as exc:
            if not self._stuck:
                self._stuck = True
                logger.warning("process %d: the shared stats block stays mid-update (%s); serving "
                               "the last values read until it recovers", os.getpid(), exc)
            return self._last if self._last is not None else empty_snapshot()
        if self._stuck:
            self._stuck = False
            logger.info("process %d: the shared stats block is readable again", os.getpid())
        self._last = snapshot
        return snapshot

    def totals(self) -> tuple[int, int, int, int]:
        """Raises RuntimeError while the block stays mid-fold longer than our patience."""
        return self._read(self.block.totals)

    def unlink(self) -> None:
        """Remove the file (if it is still ours) and let go of its lock."""
        if self.path is not None and self._fd >= 0:
            if _same_file(self.path, self._fd):
                os.unlink(self.path)
            os.close(self._fd)
            self._fd = -1


def empty_snapshot() -> dict[str, typing.Any]:
    """What a snapshot says when there is nothing to read."""
    return {"slots": [], "retired_routes": [], "retired": {
        "requests": 0, "errors": 0, "bytes_in": 0, "bytes_out": 0,
        "ws_accepted": 0, "ws_messages_in": 0, "ws_messages_out": 0}}


class RouteTotals:
    """One route's counts summed over workers (live and retired)."""

    __slots__ = ("key", "kind", "requests", "errors", "in_flight", "blocked", "duration_us", "histogram",
                 "cpu_calls", "cpu_us", "wall_us", "cpu_histogram")

    def __init__(self, key: str, kind: str) -> None:
        self.key, self.kind = key, kind
        self.requests = self.errors = self.in_flight = self.blocked = self.duration_us = 0
        self.cpu_calls = self.cpu_us = self.wall_us = 0
        self.histogram = [0] * BUCKETS
        self.cpu_histogram = [0] * BUCKETS

    def add(self, row: tuple[typing.Any, ...]) -> None:
        (_, _, requests, errors, in_flight, blocked, duration_us, histogram,
         cpu_calls, cpu_us, wall_us, cpu_histogram) = row
        self.requests += requests
        self.errors += errors
        self.in_flight += in_flight
        self.blocked += blocked
        self.duration_us += duration_us
        self.histogram = [a + b for a, b in zip(self.histogram, histogram)]
        self.cpu_calls += cpu_calls
        self.cpu_us += cpu_us
        self.wall_us += wall_us
        self.cpu_histogram = [a + b for a, b in zip(self.cpu_histogram, cpu_histogram)]

    @property
    def cpu_share(self) -> float | None:
        """The share of the handler's wall time spent on its own thread's CPU."""
        return min(1.0, self.cpu_us / self.wall_us) if self.wall_us else None

    @property
    def cpu_bound(self) -> bool:
        return cpu_bound(self.cpu_calls, self.cpu_us, self.wall_us)


def cpu_bound(calls: int, cpu_us: float, wall_us: float) -> bool:
    """Does a handler measured so hold the CPU (and, in a worker, the GIL) most of its time?"""
    return bool(calls) and cpu_us >= CPU_BOUND_SHARE * wall_us and cpu_us >= CPU_BOUND_MIN_MS * 1000 * calls


def worker_slots(snapshot: dict[str, typing.Any]) -> list[dict[str, typing.Any]]:
    return [slot for slot in snapshot["slots"] if slot.get("role", ROLE_WORKER) == ROLE_WORKER]


def lane_slots(snapshot: dict[str, typing.Any]) -> list[dict[str, typing.Any]]:
    return [slot for slot in snapshot["slots"] if slot.get("role", ROLE_WORKER) == ROLE_LANE]


def websocket_totals(snapshot: dict[str, typing.Any]) -> dict[str, int]:
    """WebSocket connections open now (live workers), and accepted and messages received and
    sent since the start (gone workers' too)."""
    slots = worker_slots(snapshot)
    retired = snapshot["retired"]
    totals = {"open": sum(s["ws_open"] for s in slots)}
    for name in ("accepted", "messages_in", "messages_out"):
        totals[name] = retired[f"ws_{name}"] + sum(s[f"ws_{name}"] for s in slots)
    return totals


def merge_routes(snapshot: dict[str, typing.Any]) -> dict[str, RouteTotals]:
    routes: dict[str, RouteTotals] = {}
    rows = [row for slot in snapshot["slots"] for row in slot["routes"]] + snapshot["retired_routes"]
    for row in rows:
        key = row[0]
        totals = routes.get(key)
        if totals is None:
            kind = "unmatched" if key == UNMATCHED_KEY else KIND_NAMES.get(row[1], "sync")
            totals = routes[key] = RouteTotals(key, kind)
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
