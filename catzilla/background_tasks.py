"""Work outside the response: `schedule_task` (after the current response has been sent) and
Catzilla 0.2.3's task engine (`app.enable_background_tasks()`, `app.add_task()`)."""
from __future__ import annotations

import asyncio
import collections
import contextvars
import dataclasses
import enum
import inspect
import itertools
import logging
import os
import queue
import threading
import time
import typing
import uuid

from .config import Config
from .kinds import HandlerKind, classify

__all__ = ["schedule_task", "BackgroundRunner", "TaskEngine", "TaskSettings", "TaskPriority", "TaskStatus",
           "TaskResult", "EngineStats"]

logger = logging.getLogger("catzilla.background")

Task = tuple[typing.Callable[..., typing.Any], tuple[typing.Any, ...], dict[str, typing.Any]]

# The request being handled in this context: set by the worker around every handler call,
# so a handler in the pool or on the loop schedules onto its own request.
current_request: contextvars.ContextVar[typing.Any] = contextvars.ContextVar("catzilla_request")
_runner: "BackgroundRunner | None" = None


class InlineRequest:
    """The request of the `async def` handler being driven inline on the loop thread. Such
    a handler cannot suspend, so nothing else runs on that thread meanwhile: a plain
    attribute does the ContextVar's job there at a fraction of its cost."""

    __slots__ = ("request", "thread")

    def __init__(self) -> None:
        self.request: typing.Any = None
        self.thread = 0


inline = InlineRequest()


def current() -> typing.Any:
    """The request being handled in this thread/context, or None (at start-up, in a task)."""
    request = inline.request
    if request is None or threading.get_ident() != inline.thread:
        request = current_request.get(None)
    return request


def after_response(request: typing.Any, fn: typing.Callable[..., typing.Any], *args: typing.Any,
                   **kwargs: typing.Any) -> bool:
    """Run `fn(*args, **kwargs)` once `request`'s response is sent; False when there is no
    such request, or its response is already sent."""
    if request is None or request.responded:
        return False
    if request.background is None:
        request.background = []
    request.background.append((fn, args, kwargs))
    return True


def schedule_task(fn: typing.Callable[..., typing.Any], *args: typing.Any, **kwargs: typing.Any) -> None:
    """Run `fn(*args, **kwargs)` once the current response is sent: an `async def` fn on the
    event loop, a `def` fn in the worker's thread pool. Errors are logged with a traceback.

    Outside a request (at start-up, in another background task) it runs as soon as possible.
    """
    if after_response(current(), fn, *args, **kwargs):
        return
    if _runner is None:
        raise RuntimeError("schedule_task() needs a running Catzilla server")
    _runner.run_threadsafe([(fn, args, kwargs)])


class BackgroundRunner:
    """Runs scheduled tasks and knows how many are still going (graceful stop waits)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: typing.Any) -> None:
        self.loop = loop
        self.pool = pool
        self.pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def install(self) -> None:
        global _runner
        _runner = self

    def run_threadsafe(self, tasks: list[Task]) -> None:
        self.loop.call_soon_threadsafe(self.run, tasks)

    def run(self, tasks: list[Task]) -> None:
        for fn, args, kwargs in tasks:
            self.pending += 1
            self._idle.clear()
            if classify(fn) is HandlerKind.SYNC:
                self.pool.submit(self._finished_in_pool(fn), _call, fn, args, kwargs)
            else:
                task = self.loop.create_task(fn(*args, **kwargs))
                task.add_done_callback(self._finished_on_loop(fn))

    def _finished_in_pool(self, fn: typing.Any) -> typing.Callable[[typing.Any, BaseException | None], None]:
        def done(result: typing.Any, error: BaseException | None) -> None:
            if isinstance(result, typing.Awaitable):  # a def that returned a coroutine
                self.pending += 1
                self.loop.create_task(_await(result)).add_done_callback(self._finished_on_loop(fn))
            self._settle(fn, error)
        return done

    def _finished_on_loop(self, fn: typing.Any) -> typing.Callable[[asyncio.Task[typing.Any]], None]:
        def done(task: asyncio.Task[typing.Any]) -> None:
            error = None if task.cancelled() else task.exception()
            self._settle(fn, error)
        return done

    def _settle(self, fn: typing.Any, error: BaseException | None) -> None:
        self.pending -= 1
        if error is not None:
            name = getattr(fn, "__qualname__", repr(fn))
            logger.error("background task %s failed", name, exc_info=(type(error), error, error.__traceback__))
        if not self.pending:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def _call(fn: typing.Callable[..., typing.Any], args: tuple[typing.Any, ...], kwargs: dict[str, typing.Any]) -> typing.Any:
    return fn(*args, **kwargs)


async def _await(awaitable: typing.Awaitable[typing.Any]) -> typing.Any:
    return await awaitable


# -- Catzilla 0.2.3's task engine: app.enable_background_tasks(), app.add_task(), @app.task ----
# Unlike schedule_task() (after this response, on the worker's own loop and pool), these
# tasks have ids, priorities, retries and results you can wait for, and run on threads of
# their own, so a burst of them does not take the pool's threads from requests.

class TaskPriority(enum.Enum):
    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


class TaskStatus(enum.Enum):
    PENDING = 0
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    CANCELLED = 4
    RETRYING = 5


@dataclasses.dataclass
class EngineStats:
    """Counters of this worker's task engine. Figures it does not measure (CPU shares,
    efficiency) stay 0.0; memory_usage_mb is the worker's resident size."""

    critical_queue_size: int = 0
    high_queue_size: int = 0
    normal_queue_size: int = 0
    low_queue_size: int = 0
    total_queued: int = 0
    queue_pressure: float = 0.0
    active_workers: int = 0
    idle_workers: int = 0
    total_workers: int = 0
    avg_worker_utilization: float = 0.0
    worker_cpu_usage: float = 0.0
    worker_memory_usage: int = 0
    tasks_per_second: float = 0.0
    avg_execution_time_ms: float = 0.0
    p95_execution_time_ms: float = 0.0
    p99_execution_time_ms: float = 0.0
    memory_usage_mb: float = 0.0
    memory_efficiency: float = 0.0
    failed_tasks: int = 0
    retry_count: int = 0
    timeout_count: int = 0
    error_rate: float = 0.0
    uptime_seconds: float = 0.0
    total_tasks_processed: int = 0
    engine_cpu_usage: float = 0.0
    engine_memory_usage: int = 0


class TaskResult:
    """The handle add_task() returns: `task_id`, `status`, `wait(timeout)`, `is_ready()`."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.status = TaskStatus.PENDING
        self.attempts = 0
        self.result: typing.Any = None
        self.error: BaseException | None = None
        self.execution_time_ms: float | None = None
        self._done = threading.Event()
        self._callbacks: list[typing.Callable[[typing.Any], None]] = []

    def wait(self, timeout: float | None = None) -> typing.Any:
        """The task's return value (or its exception, raised); TimeoutError if not done in time."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"task {self.task_id} not finished after {timeout} seconds")
        if self.error is not None:
            raise self.error
        return self.result

    def is_ready(self) -> bool:
        return self._done.is_set()

    def add_callback(self, callback: typing.Callable[[typing.Any], None]) -> None:
        """Call `callback(result)` once the task has succeeded (now, if it already has)."""
        self._callbacks.append(callback)
        if self._done.is_set() and self.error is None:
            callback(self.result)

    def _finish(self, status: TaskStatus, result: typing.Any = None, error: BaseException | None = None) -> None:
        self.status, self.result, self.error = status, result, error
        self._done.set()
        if error is None:
            for callback in self._callbacks:
                try:
                    callback(result)
                except Exception:
                    logger.exception("callback of task %s failed", self.task_id)

    def __repr__(self) -> str:
        return f"<TaskResult {self.task_id} {self.status.name}>"


@dataclasses.dataclass(order=True)
class _Job:
    priority: int
    sequence: int
    fn: typing.Any = dataclasses.field(compare=False)
    args: tuple[typing.Any, ...] = dataclasses.field(compare=False)
    kwargs: dict[str, typing.Any] = dataclasses.field(compare=False)
    handle: TaskResult = dataclasses.field(compare=False)
    max_retries: int = dataclasses.field(compare=False, default=0)
    timeout: float | None = dataclasses.field(compare=False, default=None)


class TaskSettings(typing.NamedTuple):
    """The task engine's settings: catzilla.config's task_* (their reasons are there)."""

    workers: int
    queue_size: int
    max_retries: int
    timeout: float  # seconds; 0: none
    keep_results: int

    @classmethod
    def from_config(cls, config: typing.Any) -> "TaskSettings":
        return cls(*(getattr(config, f"task_{name}") for name in cls._fields))

    @classmethod
    def defaults(cls) -> "TaskSettings":
        """The settings' defaults, for an engine outside a server (a script, a test)."""
        fields = Config.__dataclass_fields__
        return cls(*(fields[f"task_{name}"].default for name in cls._fields))


class TaskEngine:
    """A priority queue and `workers` threads, in each worker process.

    Threads are started on first use in a process (a server forks its workers after the
    app is imported, and threads do not survive a fork). When the worker stops, tasks
    already queued are still run before it exits, within the server's graceful timeout.
    Only the latest `keep_results` results are kept for get_task_result().
    """

    def __init__(self, workers: int | None = None, queue_size: int | None = None,
                 keep_results: int | None = None) -> None:
        # What the app said (enable_background_tasks' keywords) wins over the server's
        # settings, which the worker gives in configure() before it serves.
        self._given = {name: value for name, value in
                       (("workers", workers), ("queue_size", queue_size), ("keep_results", keep_results))
                       if value is not None}
        self._pid: int | None = None
        self.configure(TaskSettings.defaults())

    def configure(self, settings: "TaskSettings") -> None:
        """The server's task settings (see catzilla.config, task_*), under what the app gave.
        Before the engine runs in this process; later, only the per-task defaults change."""
        settings = settings._replace(**self._given)
        if settings.workers < 1 or settings.queue_size < 1:
            raise ValueError(f"a task engine needs workers >= 1 and queue_size >= 1, got {settings}")
        self.settings = settings
        self.workers = settings.workers
        self.queue_size = settings.queue_size
        self.keep_results = settings.keep_results
        if self._pid is None:
            self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue(settings.queue_size)
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._delayed_queued = threading.Condition(self._lock)  # signalled as delayed tasks are queued
        self._delayed = 0
        self.results: collections.OrderedDict[str, TaskResult] = collections.OrderedDict()
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.started = time.monotonic()
        self.processed = self.failed = self.retries = self.timeouts = self.active = 0
        self.times_ms: collections.deque[float] = collections.deque(maxlen=1000)

    def _ensure_running(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._pid is not None:  # forked with jobs of the parent's queue: not ours
                self._queue = queue.PriorityQueue(self.queue_size)
                self.results.clear()
                self._reset_counters()
            self._pid = os.getpid()
            for number in range(self.workers):
                threading.Thread(target=self._work, name=f"catzilla-task-{number}", daemon=True).start()

    def submit(self, fn: typing.Callable[..., typing.Any], args: tuple[typing.Any, ...], kwargs: dict[str, typing.Any],
               priority: TaskPriority, delay_ms: int, max_retries: int, timeout_ms: int | None) -> TaskResult:
        self._ensure_running()
        handle = TaskResult(uuid.uuid4().hex)
        with self._lock:
            self.results[handle.task_id] = handle
            while len(self.results) > self.keep_results:
                self.results.popitem(last=False)
        job = _Job(priority.value, next(self._sequence), fn, args, kwargs, handle, max_retries,
                   timeout_ms / 1000 if timeout_ms else None)
        if delay_ms > 0:
            with self._lock:
                self._delayed += 1
            timer = threading.Timer(delay_ms / 1000, self._enqueue_delayed, (job,))
            timer.daemon = True
            timer.start()
        else:
            self._enqueue(job)
        return handle

    def _enqueue_delayed(self, job: _Job) -> None:
        self._enqueue(job)
        with self._lock:
            self._delayed -= 1
            self._delayed_queued.notify_all()

    def _enqueue(self, job: _Job) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            job.handle._finish(TaskStatus.FAILED, error=RuntimeError(
                f"task queue full ({self.queue_size} waiting): task {job.handle.task_id} dropped"))
            self.failed += 1

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            self.active += 1
            try:
                self._run(job)
            finally:
                self.active -= 1
                self._queue.task_done()

    def _run(self, job: _Job) -> None:
        handle = job.handle
        handle.status = TaskStatus.RUNNING
        while True:
            handle.attempts += 1
            start = time.perf_counter()
            try:
                result = self._call(job)
            except BaseException as exc:  # a task's failure is its result, never the thread's end
                if isinstance(exc, TimeoutError):
                    self.timeouts += 1
                if handle.attempts <= job.max_retries and not isinstance(exc, TimeoutError):
                    self.retries += 1
                    handle.status = TaskStatus.RETRYING
                    time.sleep(min(0.01 * 2 ** handle.attempts, 1.0))
                    continue
                self.failed += 1
                self.processed += 1
                logger.error("task %s (%s) failed after %d attempt(s)", handle.task_id,
                             getattr(job.fn, "__qualname__", job.fn), handle.attempts, exc_info=exc)
                handle._finish(TaskStatus.FAILED, error=exc)
                return
            elapsed = (time.perf_counter() - start) * 1000
            self.times_ms.append(elapsed)
            handle.execution_time_ms = elapsed
            self.processed += 1
            handle._finish(TaskStatus.COMPLETED, result)
            return

    @staticmethod
    def _call(job: _Job) -> typing.Any:
        """A def task in this thread (not interruptible: its timeout is not enforced); an
        async def one on an event loop of its own, cancelled at its timeout."""
        result = job.fn(*job.args, **job.kwargs)
        if inspect.isawaitable(result):
            async def bounded() -> typing.Any:
                return await asyncio.wait_for(result, job.timeout)
            result = asyncio.run(bounded())
        return result

    def drain(self) -> None:
        """Until every task queued or delayed in this process has run."""
        if self._pid == os.getpid():
            with self._lock:
                self._delayed_queued.wait_for(lambda: not self._delayed)
            self._queue.join()

    def stats(self) -> EngineStats:
        from .memory import memory_usage_mb

        waiting = [0, 0, 0, 0]
        with self._queue.mutex:
            for job in self._queue.queue:
                waiting[job.priority] += 1
        times = sorted(self.times_ms)
        uptime = time.monotonic() - self.started
        total_workers = self.workers if self._pid == os.getpid() else 0
        return EngineStats(
            critical_queue_size=waiting[0], high_queue_size=waiting[1], normal_queue_size=waiting[2],
            low_queue_size=waiting[3], total_queued=sum(waiting),
            queue_pressure=sum(waiting) / self.queue_size, active_workers=self.active,
            idle_workers=max(0, total_workers - self.active), total_workers=total_workers,
            avg_worker_utilization=100.0 * self.active / total_workers if total_workers else 0.0,
            tasks_per_second=self.processed / uptime if uptime else 0.0,
            avg_execution_time_ms=sum(times) / len(times) if times else 0.0,
            p95_execution_time_ms=times[int(len(times) * 0.95)] if times else 0.0,
            p99_execution_time_ms=times[int(len(times) * 0.99)] if times else 0.0,
            memory_usage_mb=memory_usage_mb(), failed_tasks=self.failed, retry_count=self.retries,
            timeout_count=self.timeouts, error_rate=self.failed / self.processed if self.processed else 0.0,
            uptime_seconds=uptime, total_tasks_processed=self.processed,
        )
