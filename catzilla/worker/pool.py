"""The worker's own thread pool, where `def` handlers run.

Cheaper than `loop.run_in_executor` on purpose: a job is one tuple on a C `SimpleQueue`; a
finished job is one tuple on a deque, and the loop is woken (one self-pipe write) only when
that deque goes from empty to non-empty, so a burst of results costs one wake-up. No
concurrent.futures.Future, no asyncio.Future, no lock.

Overload: `admit` refuses a job at once when `max_queue` jobs already wait for a thread (the
check is arithmetic on counts the pool keeps anyway), and a job that has to wait is
timed, so that one picked up after `queue_timeout` is not run: `done` gets a QueueTimeout
(a job that finds a thread free costs no clock read). A job whose caller stopped waiting
(its request timed out) may keep its thread for ever: `abandon` lets the pool start one more
thread per abandoned job, up to `size` more, and the surplus leaves once they return. A
hung pool (every thread stuck on one job) is told once a tick by `stuck`.

No lock on a job's way either: every count a job changes has one writer. The loop alone
counts the jobs it submits and the results it delivers, and a pool thread's only mark is
its result on the deque, so the jobs not finished are `submitted - delivered -
len(deque)`, read on the loop; the ones not yet taken are the queue's length. The lock
guards only what changes rarely (threads starting and ending, the limit).

The way there and back is a C Handoff (ext/pool.c): a pool thread's whole loop (take a job,
run it, hand its result back, wake the loop if no wake-up is pending) and the loop's delivery
are C calls, no Python frame of their own. `PyHandoff` below is that code in Python, the
reference the tests compare it with.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import queue
import sys
import threading
import time
import traceback
import typing

from .._native import Handoff

__all__ = ["ThreadPool", "QueueTimeout", "DEFAULT_THREADS", "QUEUE_PER_THREAD", "thread_stacks"]

logger = logging.getLogger("catzilla.worker")

# Sync handlers mostly wait on I/O (databases, files, other services), not the CPU; 40
# threads lets 40 such waits overlap per worker while staying far from memory trouble.
DEFAULT_THREADS = 40
# --max-queue 'auto': jobs that may wait, per thread. A full queue then waits about this many
# handler durations, so the requests admitted under overload stay fast (see README).
QUEUE_PER_THREAD = 2

Done = typing.Callable[[typing.Any, typing.Optional[BaseException]], None]
_STOP = object()


class QueueTimeout(Exception):
    """What `done` gets for an admitted job that waited longer than `queue_timeout` for a
    thread and so was not run; `args` holds the job's arguments."""


class PyHandoff:
    """What _native.Handoff does, in Python: the reference (tests/test_pool_native.py).

    The hand-off between the loop and the pool threads, and the counts the pool is told
    apart by: `admit` and `submit` (on the loop) put a job on the queue, `work` is a pool
    thread's loop, `deliver` (on the loop) hands finished jobs to their `done`."""

    def __init__(self, get: typing.Callable[[], typing.Any], put: typing.Callable[[typing.Any], None],
                 finished: collections.deque[tuple[Done, typing.Any, BaseException | None]],
                 wake: typing.Callable[..., typing.Any], stop: object, start: typing.Callable[[], None],
                 waiting: typing.Callable[..., typing.Any],
                 report: typing.Callable[[BaseException], None],
                 traced: typing.Callable[[BaseException], BaseException]) -> None:
        self.get, self.put, self.finished, self.wake, self.stop = get, put, finished, wake, stop
        self.start, self.waiting, self.report = start, waiting, report
        self.pending = False  # a wake-up is scheduled and has not started delivering
        self.timed = False  # a job that has to wait for a thread is timed (waiting() makes it)
        # Written on the loop's thread (see ThreadPool's docstring): jobs submitted, finished
        # jobs handed to their `done`; threads started and not ended (ThreadPool keeps it).
        self.submitted = self.delivered = self.threads = 0
        self.limit = 0  # threads that may run
        self.capacity = 0  # jobs running or waiting beyond which `admit` refuses

    def submit(self, done: Done, fn: typing.Callable[..., typing.Any], *args: typing.Any) -> None:
        ahead = self.submitted - self.delivered - len(self.finished)
        self._queue(ahead, (done, fn, args))

    def admit(self, done: Done, fn: typing.Callable[..., typing.Any], *args: typing.Any) -> bool:
        ahead = self.submitted - self.delivered - len(self.finished)  # a thread each, or waiting
        if ahead >= self.capacity:
            return False
        if ahead < self.limit or not self.timed:  # a thread is free for it: no wait
            self._queue(ahead, (done, fn, args))
        else:
            self._queue(ahead, self.waiting(done, fn, args))
        return True

    def _queue(self, ahead: int, job: tuple[Done, typing.Any, typing.Any]) -> None:
        self.submitted += 1
        self.put(job)
        if self.threads <= ahead and self.threads < self.limit:  # none free for it
            self.start()

    def work(self, deliver: typing.Callable[[], None]) -> bool:
        """A pool thread's loop: True when it takes `stop`, False when the loop has closed."""
        get, finished, wake = self.get, self.finished, self.wake
        while True:
            job = get()
            if job is self.stop:
                return True
            done, fn, args = job
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to `done`, which decides what it means
                result, error = None, exc
            finished.append((done, result, error))  # the job is no longer pending from here
            # Drop this thread's references: an idle thread must not keep its last response
            # (megabytes, for a large one) alive until its next job.
            job = args = result = error = None
            # Order matters: append first, then look at the flag (see deliver).
            if not self.pending:
                self.pending = True
                try:
                    wake(deliver)
                except RuntimeError:  # the loop has closed: nobody is waiting any more
                    return False

    def deliver(self) -> None:
        """On the loop: every finished job handed to its `done(result, error)`."""
        # Clear the flag before draining: a result appended after this line either gets
        # drained below or schedules a new delivery; none can be stranded.
        self.pending = False
        finished = self.finished
        while finished:
            done, result, error = finished.popleft()
            self.delivered += 1  # with the pop, before `done` may submit (see `pending`)
            try:
                done(result, error)
            except Exception as exc:
                self.report(exc)


def _report(exc: BaseException) -> None:
    logger.error("error while completing a thread pool job", exc_info=exc)


def _traced(exc: BaseException) -> BaseException:
    """`exc` with a traceback: one raised by C code alone, with no Python frame, has none."""
    try:
        raise exc
    except BaseException as caught:
        return caught


class ThreadPool:
    handoff = Handoff  # (PyHandoff in the tests that compare the two)
    # Called on the loop's thread, as `abandon` and `reclaim` are (the counts' one writer):
    submit: typing.Callable[..., None]
    """submit(done, fn, *args): run `fn(*args)` in a pool thread, then `done(result, error)`
    on the loop."""
    admit: typing.Callable[..., bool]
    """admit(done, fn, *args) -> bool: `submit`, unless `max_queue` jobs already wait for a
    thread: then False, at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int = DEFAULT_THREADS,
                 name: str = "catzilla-pool", *, max_queue: int | None = None,
                 queue_timeout: float = 0.0) -> None:
        if size < 1:
            raise ValueError("the thread pool needs at least one thread")
        self.size = size
        self._loop = loop
        self._name = name
        self._jobs: queue.SimpleQueue[typing.Any] = queue.SimpleQueue()
        self._finished: collections.deque[tuple[Done, typing.Any, BaseException | None]] = collections.deque()
        # The counts (submitted, delivered, threads, limit, capacity) are the handoff's.
        self._handoff = handoff = self.handoff(self._jobs.get, self._jobs.put, self._finished,
                                               loop.call_soon_threadsafe, _STOP, self._start_thread,
                                               self._waiting, _report, _traced)
        self.submit, self.admit = handoff.submit, handoff.admit  # no frame of their own
        self._deliver = handoff.deliver  # (read by each thread when it starts)
        self._threads: list[threading.Thread] = []
        self._named = 0  # threads started so far, for their names
        self.abandoned = 0  # jobs still running whose callers gave up on them
        self._stopping = 0  # _STOPs queued to end surplus threads, not yet taken
        # Jobs that may wait for a thread before `admit` refuses one; None: no bound.
        self.max_queue = sys.maxsize if max_queue is None else max_queue
        self.queue_timeout = queue_timeout  # seconds an admitted job may wait; 0: no limit
        handoff.timed = bool(queue_timeout)
        self._set_limit()
        self._lock = threading.Lock()  # guards _threads and _stopping, off the hot path
        self._saturated: tuple[int, float] | None = None  # see stuck

    @property
    def limit(self) -> int:
        """Threads that may run: size, plus one per abandoned job (<= 2 x size)."""
        return self._handoff.limit

    @property
    def pending(self) -> int:
        """Jobs submitted and not finished: running, or waiting for a thread."""
        handoff = self._handoff
        return handoff.submitted - handoff.delivered - len(self._finished)

    @property
    def queued(self) -> int:
        """Jobs submitted and not yet picked up by a thread."""
        return max(0, self._jobs.qsize() - self._stopping)

    @property
    def busy(self) -> int:
        """Jobs being run right now (abandoned ones too)."""
        return max(0, self.pending - self.queued)

    @property
    def completed(self) -> int:
        """Jobs finished so far, for telling a hung pool (see stuck)."""
        return self._handoff.delivered + len(self._finished)

    def _waiting(self, done: Done, fn: typing.Callable[..., typing.Any],
                 args: tuple[typing.Any, ...]) -> tuple[Done, typing.Any, typing.Any]:
        """The job of one admitted with no thread free for it: timed from now."""
        return done, self._unless_stale, (time.monotonic(), fn, args)

    def _unless_stale(self, since: float, fn: typing.Callable[..., typing.Any],
                      args: tuple[typing.Any, ...]) -> typing.Any:
        """In a pool thread, a job that had to wait: run unless it waited too long."""
        if time.monotonic() - since > self.queue_timeout:
            raise QueueTimeout(*args)
        return fn(*args)

    def abandon(self) -> None:
        """A job's caller stopped waiting for it, and its thread may never come back: allow
        one more thread (up to `size` more in all), so that queued work still finds one."""
        self.abandoned += 1
        self._set_limit()
        if len(self._threads) < min(self.pending, self.limit):
            self._start_thread()

    def reclaim(self) -> None:
        """An abandoned job has returned: one thread fewer is allowed, and a surplus thread
        is told to end (after the jobs queued before its notice)."""
        with self._lock:
            self.abandoned = max(0, self.abandoned - 1)
            self._set_limit()
            if len(self._threads) - self._stopping > self.limit:
                self._stopping += 1
                self._jobs.put(_STOP)

    def _set_limit(self) -> None:
        handoff = self._handoff
        handoff.limit = limit = self.size + min(self.abandoned, self.size)
        # Jobs run or waiting beyond which `admit` refuses: a thread each for `limit` of them,
        # and `max_queue` waiting with no thread to take them.
        handoff.capacity = min(limit + self.max_queue, sys.maxsize)

    def stuck(self, longer_than: float) -> list[int]:
        """Once a tick: when every thread the pool may run has been busy on one job for
        longer than `longer_than` seconds (the pool is hung: nothing queued can start), the
        threads' idents; otherwise []. Told without a clock read per job: if all threads are
        busy and no job has finished since they were first seen so, each has been on its
        job since then."""
        now = time.monotonic()
        saturated = self.busy >= self.limit
        completed = self.completed
        with self._lock:
            idents = [thread.ident for thread in self._threads]
        if not saturated:
            self._saturated = None
            return []
        if self._saturated is None or self._saturated[0] != completed:
            self._saturated = (completed, now)
            return []
        if now - self._saturated[1] < longer_than:
            return []
        return [ident for ident in idents if ident is not None]

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
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(_STOP)
        if wait:
            for thread in threads:
                thread.join()
        with self._lock:
            self._threads.clear()
            self._handoff.threads = 0

    def _start_thread(self) -> None:
        with self._lock:
            thread = threading.Thread(target=self._work, name=f"{self._name}-{self._named}", daemon=True)
            self._named += 1
            self._threads.append(thread)
            self._handoff.threads = len(self._threads)
        thread.start()

    def _work(self) -> None:
        if not self._handoff.work(self._deliver):
            return  # the loop has closed
        with self._lock:  # it took a _STOP
            self._stopping = max(0, self._stopping - 1)
            thread = threading.current_thread()
            if thread in self._threads:  # not after shutdown() has let go of them
                self._threads.remove(thread)
                self._handoff.threads = len(self._threads)


def thread_stacks(idents: typing.Iterable[int]) -> str:
    """The Python stacks of these threads, one per distinct stack with the threads at it."""
    frames = sys._current_frames()
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    at: dict[str, list[str]] = {}
    for ident in idents:
        frame = frames.get(ident)
        if frame is not None:
            at.setdefault("".join(traceback.format_stack(frame)), []).append(names.get(ident, str(ident)))
    return "\n".join(f"{len(threads)} thread(s) ({', '.join(threads)}):\n{stack}"
                     for stack, threads in at.items())
