"""The worker's own thread pool, where `def` handlers run.

Cheaper than `loop.run_in_executor` on purpose: a job is one tuple on a C `SimpleQueue`; a
finished job is one tuple on a deque, and the loop is woken (one self-pipe write) only when
that deque goes from empty to non-empty, so a burst of results costs one wake-up. No
concurrent.futures.Future, no asyncio.Future, no per-job lock.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
import typing

__all__ = ["ThreadPool", "DEFAULT_THREADS"]

logger = logging.getLogger("catzilla.worker")

# Sync handlers mostly wait on I/O (databases, files, other services), not the CPU; 40
# threads lets 40 such waits overlap per worker while staying far from memory trouble.
DEFAULT_THREADS = 40

Done = typing.Callable[[typing.Any, typing.Optional[BaseException]], None]
_STOP = object()


class ThreadPool:
    def __init__(self, loop: asyncio.AbstractEventLoop, size: int = DEFAULT_THREADS,
                 name: str = "catzilla-pool") -> None:
        if size < 1:
            raise ValueError("the thread pool needs at least one thread")
        self.size = size
        self._loop = loop
        self._name = name
        self._jobs: queue.SimpleQueue[typing.Any] = queue.SimpleQueue()
        self._finished: collections.deque[tuple[Done, typing.Any, BaseException | None]] = collections.deque()
        self._wakeup_pending = False
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads blocked waiting for a job
        self.busy = 0  # jobs being run right now
        self.queued = 0  # jobs submitted and not yet picked up
        self._lock = threading.Lock()  # guards the counters above, off the loop's hot path

    def submit(self, done: Done, fn: typing.Callable[..., typing.Any], *args: typing.Any) -> None:
        """Run `fn(*args)` in a pool thread, then `done(result, error)` on the loop."""
        with self._lock:
            self.queued += 1
            start_thread = self._idle < self.queued and len(self._threads) < self.size
        self._jobs.put((done, fn, args))
        if start_thread:
            self._start_thread()

    def run(self, fn: typing.Callable[..., typing.Any], *args: typing.Any) -> asyncio.Future[typing.Any]:
        """`fn(*args)` in the pool as an awaitable: for the rarer paths (streaming bodies)."""
        future = self._loop.create_future()

        def done(result: typing.Any, error: BaseException | None) -> None:
            if future.cancelled():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        self.submit(done, fn, *args)
        return future

    def snapshot(self) -> dict[str, int]:
        return {"size": self.size, "busy": self.busy, "queued": self.queued}

    def shutdown(self, wait: bool = True) -> None:
        for _ in self._threads:
            self._jobs.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()
        self._threads.clear()

    def _start_thread(self) -> None:
        with self._lock:
            self._idle += 1  # it is about to wait for a job; _work counts it idle after each one
        thread = threading.Thread(
            target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        jobs, finished, lock = self._jobs, self._finished, self._lock
        while True:
            job = jobs.get()
            with lock:
                self._idle -= 1
                if job is _STOP:
                    return
                self.queued -= 1
                self.busy += 1
            done, fn, args = job
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to `done`, which decides what it means
                result, error = None, exc
            with lock:
                self.busy -= 1
                self._idle += 1
            finished.append((done, result, error))
            # Order matters: append first, then look at the flag (see _deliver).
            if not self._wakeup_pending:
                self._wakeup_pending = True
                try:
                    self._loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop has closed: nobody is waiting any more
                    return

    def _deliver(self) -> None:
        # Clear the flag before draining: a result appended after this line either gets
        # drained below or schedules a new delivery; none can be stranded.
        self._wakeup_pending = False
        finished = self._finished
        while finished:
            done, result, error = finished.popleft()
            try:
                done(result, error)
            except Exception:
                logger.exception("error while completing a thread pool job")
