"""How much of a `def` handler's time is CPU: measured per call, told once per route.

Every sync route's handler is wrapped, in this worker only, by a call that reads its own
thread's CPU clock and the wall clock around it (two clock reads, about a microsecond). The
sums go to the route's row in the stats block (`cpu_ms` p50/p99, `cpu_bound`; atomic adds,
from whichever pool thread ran it) and to this worker's own tally, which the tick looks at:

- a route whose calls were mostly CPU in the last second while the event loop was late for
  its turn (it waits for the GIL the handler holds) gets one warning, naming the fix;
- with --auto-cpu-lane, a route measured CPU-bound moves to the CPU lane for its next requests.

Free-threaded Python (no GIL): the tally is guarded by a lock and the stats block's CPU
counters are atomic, so both stay exact when pool threads really run in parallel.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import sysconfig
import threading
import time
import typing

from ..kinds import HandlerKind
from ..stats import cpu_bound

__all__ = ["CpuWatch", "gil_disabled", "interpreter_line"]

logger = logging.getLogger("catzilla.worker")

# A loop that waits longer than this for a callback it scheduled itself has been slowed: an
# idle loop runs it within tens of µs, one waiting for the GIL a switch interval later.
LAG_WARNING = 0.0005
# Seconds between the probes of the loop's lag: ten looks a second cost nothing.
PROBE = 0.1
# Calls measured before --auto-cpu-lane moves a route: one slow call (a cold cache, a first
# import) is not a profile.
AUTO_MIN_CALLS = 3


def gil_disabled() -> bool:
    """Is this a free-threaded interpreter running without its GIL (3.13t, 3.14t)?"""
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return False
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return is_enabled is not None and not is_enabled()


def interpreter_line() -> str:
    """The start-up line's word on threads: do `def` handlers really run in parallel here?"""
    version = ".".join(map(str, sys.version_info[:3]))
    if gil_disabled():
        return f"Python {version} free-threaded, GIL disabled: `def` handlers run in parallel with the event loop"
    built = " (free-threaded build, GIL re-enabled)" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    return (f"Python {version} with the GIL{built}: switch interval {sys.getswitchinterval() * 1000:g} ms; "
            f"CPU-bound `def` handlers belong in the CPU lane (cpu_bound=True)")


class CpuWatch:
    def __init__(self, loop: asyncio.AbstractEventLoop, routes: list[typing.Any], stats_slot: typing.Any,
                 lane: bool, auto_lane: bool) -> None:
        self.loop = loop
        self.routes = routes
        self.stats_slot = stats_slot
        self.lane = lane  # a CPU lane runs beside this worker
        self.auto_lane = auto_lane and lane
        self._lock = threading.Lock()
        self._recent: dict[int, list[float]] = {}  # route index -> [calls, cpu s, wall s], this tick
        self._total: dict[int, list[float]] = {}  # the same since start, for --auto-cpu-lane
        self._warned: set[int] = set()
        self.max_lag = 0.0  # the longest a probe waited since the last tick
        self._probing: asyncio.TimerHandle | None = None

    def wrap(self) -> None:
        """Measure every sync route's handler (its `endpoint`, in this process only)."""
        for route in self.routes:
            if route.kind is HandlerKind.SYNC:
                route.endpoint = _measured(route.endpoint, route.index, self.record)

    def record(self, index: int, cpu: float, wall: float) -> None:
        """From the thread that ran the handler."""
        if self.stats_slot is not None:
            self.stats_slot.cpu(index, cpu, wall)
        with self._lock:
            for tally in (self._recent, self._total):
                sums = tally.get(index)
                if sums is None:
                    tally[index] = [1, cpu, wall]
                else:
                    sums[0] += 1
                    sums[1] += cpu
                    sums[2] += wall

    def tick(self) -> None:
        """Once a second, from the loop: which routes computed while the loop was kept waiting."""
        with self._lock:
            recent, self._recent = self._recent, {}
        lag, self.max_lag = self.max_lag, 0.0
        if self._probing is None and any(route.kind is HandlerKind.SYNC for route in self.routes):
            self._probe()
        for index, (calls, cpu, wall) in recent.items():
            if cpu_bound(int(calls), cpu * 1e6, wall * 1e6):
                self._judge(self.routes[index], lag, calls, cpu, wall)

    def _probe(self) -> None:
        """Every PROBE seconds: how long does a callback the loop schedules for itself wait?"""
        self._probing = self.loop.call_later(PROBE, self._probe)
        self.loop.call_soon(self._probed, time.perf_counter())

    def _probed(self, scheduled: float) -> None:
        self.max_lag = max(self.max_lag, time.perf_counter() - scheduled)

    def stop(self) -> None:
        if self._probing is not None:
            self._probing.cancel()

    def _judge(self, route: typing.Any, lag: float, calls: float, cpu: float, wall: float) -> None:
        if route.cpu_bound:  # in the lane already (or marked for it): no GIL of ours
            return
        index = route.index
        if lag >= LAG_WARNING and index not in self._warned and not gil_disabled():
            self._warned.add(index)
            logger.warning(
                "sync handler for %s %s is CPU-bound (%.0f%% of its %.1f ms per call is CPU) and slows "
                "worker %d's event loop (%.1f ms late for its turn): every other request waits for "
                "the GIL meanwhile. Mark it cpu_bound=True (@app.%s(%r, cpu_bound=True)) to run it in "
                "the CPU lane's processes, or start the server with --auto-cpu-lane.",
                route.method, route.path, 100 * cpu / wall if wall else 100, 1000 * wall / calls,
                os.getpid(), lag * 1000, route.method.lower(), route.path)
        if self.auto_lane:
            with self._lock:
                total = list(self._total.get(index, (0, 0.0, 0.0)))
            if total[0] >= AUTO_MIN_CALLS and cpu_bound(int(total[0]), total[1] * 1e6, total[2] * 1e6):
                route.cpu_bound = True
                logger.info("--auto-cpu-lane: %s %s is CPU-bound (%.0f%% CPU over %d calls); its "
                            "requests now run in the CPU lane", route.method, route.path,
                            100 * total[1] / total[2] if total[2] else 100, total[0])


def _measured(endpoint: typing.Callable[..., typing.Any], index: int,
              record: typing.Callable[[int, float, float], None]) -> typing.Callable[..., typing.Any]:
    thread_time, perf_counter = time.thread_time, time.perf_counter

    @functools.wraps(endpoint)
    def call(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        cpu, wall = thread_time(), perf_counter()
        try:
            return endpoint(*args, **kwargs)
        finally:
            record(index, thread_time() - cpu, perf_counter() - wall)

    return call
