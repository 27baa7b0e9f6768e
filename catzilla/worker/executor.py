"""The hybrid executor: every handler runs where its kind, decided at registration, says.

- SYNC: one hop to the worker's thread pool, where the handler runs *and* its response is
  serialised to bytes, and one hop back (the pool's batched delivery) to write them.
- ASYNC_INLINE: a coroutine that cannot suspend is driven to completion right here, on the
  loop, with no Task (a Task costs a scheduling round trip of its own).
- ASYNC: a Task on the loop.
"""
from __future__ import annotations

import asyncio
import contextvars
import threading
import inspect
import logging
import typing

from ..background_tasks import current_request, inline
from ..binding import BadRequest
from ..errors import HTTPException, RequestValidationError
from ..handlers import HandlerKind
from ..request import Request
from ..responses import Response, error_response, to_response
from ..routing import Route

__all__ = ["Executor", "Outcome"]

logger = logging.getLogger("catzilla.worker")

# What a handler call produced: the response and, unless it streams, its encoded bytes.
Outcome = tuple[Response, typing.Optional[bytes]]

# What a handler may raise and still get an answer (a 500): SystemExit too, which must not
# end the worker. Task cancellation (BaseException) still propagates.
HANDLER_ERRORS = (Exception, SystemExit)

SYNC = HandlerKind.SYNC
ASYNC_INLINE = HandlerKind.ASYNC_INLINE


class Connection(typing.Protocol):
    def complete(self, outcome: Outcome) -> None: ...


def invoke(route: Route, request: Request, kwargs: dict[str, typing.Any] | None) -> typing.Any:
    if kwargs is None:
        return route.endpoint(request) if route.binding.pass_request else route.endpoint()
    if route.binding.pass_request:
        return route.endpoint(request, **kwargs)
    return route.endpoint(**kwargs)


def encode(response: Response, common: bytes, head_only: bool) -> Outcome:
    return response, (None if response.streaming else response.encode(common, head_only))


def failure(route: Route | None, exc: BaseException, common: bytes, head_only: bool = False) -> Outcome:
    """The response for an exception out of a handler (or out of binding its parameters).
    Always an answer: if even the error response cannot be built (an HTTPException with a
    header that would split the response, a detail JSON cannot hold), a plain 500."""
    try:
        return _failure(route, exc, common, head_only)
    except Exception:
        where = f"{route.method} {route.path}" if route is not None else "request"
        logger.exception("could not build the error response for %s (for %r)", where, exc)
        return encode(error_response(500, "Internal Server Error"), common, head_only)


def _failure(route: Route | None, exc: BaseException, common: bytes, head_only: bool) -> Outcome:
    if isinstance(exc, HTTPException):
        response = error_response(exc.status_code, exc.detail, exc.headers)
    elif isinstance(exc, RequestValidationError):
        response = error_response(422, exc.errors)
    elif isinstance(exc, BadRequest):
        response = error_response(400, str(exc))
    else:
        where = f"{route.method} {route.path}" if route is not None else "request"
        logger.error("Exception in handler for %s", where, exc_info=(type(exc), exc, exc.__traceback__))
        response = error_response(500, "Internal Server Error")
    return encode(response, common, head_only)


class Executor:
    def __init__(self, loop: asyncio.AbstractEventLoop, pool: typing.Any) -> None:
        self.loop = loop
        self.pool = pool
        inline.thread = threading.get_ident()  # the loop's thread

    def start(self, conn: Connection, route: Route, request: Request, common: bytes, head_only: bool) -> None:
        """Run `route`'s handler for `request`; `conn.complete(outcome)` follows on the loop."""
        binding = route.binding
        if binding.trivial:
            kwargs = None
        else:
            try:
                kwargs = binding.bind(request)
            except (RequestValidationError, BadRequest) as exc:
                conn.complete(failure(route, exc, common, head_only))
                return
        kind = route.kind
        if kind is SYNC:
            self.pool.submit(self._sync_done, contextvars.copy_context().run,
                             _run_sync, conn, route, request, kwargs, common, head_only)
        elif kind is ASYNC_INLINE:
            inline.request = request
            try:
                try:
                    if not binding.pass_request:
                        coroutine = invoke(route, request, kwargs)
                    elif kwargs is None:  # the usual `(request)`
                        coroutine = route.endpoint(request)
                    else:
                        coroutine = route.endpoint(request, **kwargs)
                    coroutine.send(None)
                    # Unreachable for a body without await; guards against a misclassification.
                    coroutine.close()
                    raise RuntimeError(f"handler {route.name} suspended although it has no await")
                except StopIteration as stop:
                    response = stop.value
                    if not isinstance(response, Response):
                        response = to_response(response)
                outcome = response, (None if response.streaming else response.encode(common, head_only))
            except HANDLER_ERRORS as exc:
                outcome = failure(route, exc, common, head_only)
            finally:
                inline.request = None
            conn.complete(outcome)
        else:
            self.loop.create_task(_run_task(conn, route, request, kwargs, common, head_only))

    def _sync_done(self, result: typing.Any, error: BaseException | None) -> None:
        """Back on the loop with what _run_sync returned: (conn, outcome), or (conn, the
        awaitable a `def` handler returned, route, common, head_only)."""
        if error is not None:  # _run_sync catches everything; this is a bug guard
            logger.error("thread pool job failed", exc_info=(type(error), error, error.__traceback__))
            return
        if len(result) == 2:
            result[0].complete(result[1])
        else:
            self._await_returned(*result)

    def _await_returned(self, conn: Connection, route: Route, awaitable: typing.Awaitable[typing.Any],
                        common: bytes, head_only: bool) -> None:
        """A `def` handler returned an awaitable: await it on the loop, and say so once."""
        if not route.warned_awaitable:
            route.warned_awaitable = True
            logger.warning(
                "handler for %s %s is a plain callable that returned an awaitable; it is awaited "
                "on the event loop, but declaring it `async def` saves a thread pool round trip",
                route.method, route.path)

        async def finish() -> None:
            try:
                outcome = encode(to_response(await awaitable), common, head_only)
            except HANDLER_ERRORS as exc:
                outcome = failure(route, exc, common, head_only)
            conn.complete(outcome)

        self.loop.create_task(finish())


def _run_sync(conn: Connection, route: Route, request: Request, kwargs: dict[str, typing.Any] | None,
              common: bytes, head_only: bool) -> tuple[typing.Any, ...]:
    """In a pool thread, inside a copy of the loop's context: the handler and its
    serialisation, so the loop only writes the bytes."""
    current_request.set(request)
    try:
        result = invoke(route, request, kwargs)
        if inspect.isawaitable(result):
            return conn, route, result, common, head_only
        if not isinstance(result, Response):
            result = to_response(result)
        return conn, (result, None if result.streaming else result.encode(common, head_only))
    except HANDLER_ERRORS as exc:
        return conn, failure(route, exc, common, head_only)


async def _run_task(conn: Connection, route: Route, request: Request,
                    kwargs: dict[str, typing.Any] | None, common: bytes, head_only: bool) -> None:
    current_request.set(request)
    try:
        outcome = encode(to_response(await invoke(route, request, kwargs)), common, head_only)
    except HANDLER_ERRORS as exc:
        outcome = failure(route, exc, common, head_only)
    conn.complete(outcome)
