"""`schedule_task`: work that runs after the current response has been sent."""
from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import typing

from .kinds import HandlerKind, classify

__all__ = ["schedule_task", "BackgroundRunner"]

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


def schedule_task(fn: typing.Callable[..., typing.Any], *args: typing.Any, **kwargs: typing.Any) -> None:
    """Run `fn(*args, **kwargs)` once the current response is sent: an `async def` fn on the
    event loop, a `def` fn in the worker's thread pool. Errors are logged with a traceback.

    Outside a request (at start-up, in another background task) it runs as soon as possible.
    """
    request = current()
    if request is not None and not request.responded:
        if request.background is None:
            request.background = []
        request.background.append((fn, args, kwargs))
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
