"""The blocked-loop detector: notices an `async def` handler that keeps the event loop busy.

A side thread asks the loop to run a no-op every `threshold` seconds. When the no-op has not
run by the next look, the loop is stuck: the thread reads the loop thread's Python stack
(sys._current_frames), finds the handler it is in and the line it is blocked at, logs that
once per episode and counts it for the route. The request path does nothing for it: the cost
is one wake-up of the loop per threshold.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import typing

from ..kinds import HandlerKind, _target

__all__ = ["LoopMonitor"]

logger = logging.getLogger("catzilla.worker")


class LoopMonitor:
    def __init__(self, loop: asyncio.AbstractEventLoop, routes: typing.Iterable[typing.Any],
                 threshold: float, stats_slot: typing.Any) -> None:
        self.loop = loop
        self.threshold = threshold
        self.stats_slot = stats_slot
        self.loop_thread = threading.get_ident()
        # The code of everything that runs on the loop for a route: its async handler, and
        # the hooks and middleware of its chain, with what to call it in the warning.
        self.by_code: dict[typing.Any, typing.Any] = {}
        self.what: dict[typing.Any, str] = {}
        for route in routes:
            if route.kind is not HandlerKind.SYNC:
                self._watch_code(route.endpoint, route, "async handler")
            pipeline = getattr(route, "pipeline", None)
            if pipeline is not None:
                for hook, _ in pipeline.loop_before + pipeline.loop_after:
                    self._watch_code(hook, route, f"hook {getattr(hook, '__qualname__', hook)!s}")
                # what runs instead of a hook or handler's coroutine (pipeline.plain_twin)
                for original, twin in getattr(pipeline, "twins", {}).items():
                    what = "async handler" if original is route.endpoint else f"hook {original.__qualname__}"
                    self._watch_code(twin, route, what)
                for middleware in pipeline.middleware:
                    # A PhasedMiddleware's halves run without its dispatch (pipeline.py).
                    for part in (middleware.dispatch, *(getattr(middleware, "phases", None) or ())):
                        if part is not None:
                            self._watch_code(part, route, f"middleware {type(middleware).__name__}")
        self._answered = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="catzilla-loop-monitor", daemon=True)

    def _watch_code(self, fn: typing.Any, route: typing.Any, what: str) -> None:
        code = getattr(_target(fn), "__code__", None)
        if code is not None and code not in self.by_code:
            self.by_code[code] = route
            self.what[code] = what

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        while not self._stopped.is_set():
            self._answered.clear()
            try:
                self.loop.call_soon_threadsafe(self._answered.set)
            except RuntimeError:  # the loop is closed
                return
            if self._answered.wait(self.threshold):
                self._stopped.wait(self.threshold)
                continue
            self._report(time.monotonic())
            while not self._answered.wait(self.threshold):  # one report per episode
                if self._stopped.is_set():
                    return

    def _report(self, since: float) -> None:
        frame = sys._current_frames().get(self.loop_thread)
        innermost = frame
        route = None
        handler_frame = None
        while frame is not None:
            route = self.by_code.get(frame.f_code)
            if route is not None:
                handler_frame = frame
                break
            frame = frame.f_back
        if route is None or innermost is None or handler_frame is None:
            return  # the loop is busy, but not inside an async handler (our own code, a Task)
        where = f"{innermost.f_code.co_filename}:{innermost.f_lineno} in {innermost.f_code.co_name}"
        what = self.what[handler_frame.f_code]
        logger.warning(
            "%s for %s %s has blocked the event loop for over %.0f ms at %s "
            "(its line %d); every other request of this worker waits meanwhile. Make it a "
            "plain `def` to run it in the thread pool, or await a non-blocking call.",
            what, route.method, route.path, self.threshold * 1000, where, handler_frame.f_lineno)
        if self.stats_slot is not None:
            self.stats_slot.blocked(route.index)
