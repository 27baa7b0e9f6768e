"""The hybrid executor: every handler runs where its kind, decided at registration, says.

- SYNC: one hop to the worker's thread pool, where the handler runs *and* its response is
  serialised to bytes, and one hop back (the pool's batched delivery) to write them.
- ASYNC_INLINE: a coroutine that cannot suspend is driven to completion right here, on the
  loop, with no Task (a Task costs a scheduling round trip of its own).
- ASYNC: a Task on the loop.

Exactly one outcome per request: a request whose handler runs in the pool or as a Task is
`owed` by its exchange (catzilla.worker.exchange) until the first outcome is delivered: the
handler's, the 504 of its timeout (checked once a tick, see `expire`) or a 503 of admission
control. Whatever comes second finds `owed` cleared and is dropped. Admission: the pool
bounds its queue (`--max-queue`, checked under the lock it takes anyway), a job that waited
past `--queue-timeout` is answered 503 unrun, and `--limit-concurrency` bounds the requests
in flight (when set: counted from the pool's own counters and the Tasks, so the sync path
pays nothing for it).
"""
from __future__ import annotations

import asyncio
import contextvars
import threading
import inspect
import logging
import time
import types
import typing
from contextvars import copy_context

from ..background_tasks import current_request, inline
from ..binding import BadRequest
from ..errors import HTTPException, RequestValidationError
from .._native import InlineBatch, PlainInvoke, Suspended, SyncDone, SyncJob, drive, encode, finish_inline, run_chain
from ..kinds import HandlerKind
from ..pipeline import refusal
from ..request import Request
from ..responses import JSONResponse, Response, error_response, to_response
from ..routing import Route
from .exchange import Exchange
from .pool import QueueTimeout

__all__ = ["Executor", "RETRY_AFTER", "failure", "run_inline"]

logger = logging.getLogger("catzilla.worker")

perf_counter = time.perf_counter  # the clock of an exchange's `started` (CLOCK_MONOTONIC)

# Seconds a refused client is asked to wait (Retry-After): overload is mostly a burst, and a
# second spreads the retries out without making anyone wait long.
RETRY_AFTER = 1
_RETRY_HEADERS = {"retry-after": str(RETRY_AFTER)}

# What a handler may raise and still get an answer (a 500): SystemExit too, which must not
# end the worker. Task cancellation (BaseException) still propagates.
HANDLER_ERRORS = (Exception, SystemExit)

run_in = contextvars.Context.run  # run_in(context, fn, *args)

SYNC = HandlerKind.SYNC
ASYNC_INLINE = HandlerKind.ASYNC_INLINE


class Connection(typing.Protocol):
    """What the executor uses of the connection an exchange came from (HttpProtocol)."""

    worker: typing.Any

    def complete(self, exchange: Exchange, response: Response, data: bytes | None) -> None: ...


def invoke(route: Route, request: Request, kwargs: dict[str, typing.Any] | None) -> typing.Any:
    binding = route.binding
    if kwargs is None:
        return route.endpoint(request) if binding.pass_request else route.endpoint()
    if binding.pass_request:
        # Loaded, then called: `binding.call(...)` is a method look-up of an instance
        # attribute, which the interpreter does not specialise.
        call = binding.call
        return call(route.endpoint, request, kwargs)
    return route.endpoint(**kwargs)


def run_inline(exchange: Exchange, route: Route, request: Request,
               kwargs: dict[str, typing.Any] | None, plain: typing.Any = None) -> None:
    """An `async def` handler that cannot suspend, driven to its end right here (no Task),
    made a response and encoded in one C call (ext/inline.c), and handed to the connection.
    Executor.start's way for such a route, and the connection's own for the routes of
    Executor.straight (called with kwargs None). `plain`: the route's PlainInvoke, which
    binds and calls the handler in one C call (a 422 out of it is failure()'s too)."""
    inline.request = request
    try:
        # In a copy of the current context, as a Task would run it: what the handler sets
        # stays with its request (ext/connection.c's way does the same).
        response, data = copy_context().run(invoke_and_finish, route, request, kwargs, plain, exchange)
    except HANDLER_ERRORS as exc:
        response, data = failure(exchange, exc)
    finally:
        inline.request = None
    exchange.connection.complete(exchange, response, data)


def invoke_and_finish(route: Route, request: Request, kwargs: dict[str, typing.Any] | None, plain: typing.Any,
                      exchange: Exchange) -> tuple[Response, bytes | None]:
    """The handler called and its coroutine finished: run_inline's step in its own context."""
    coroutine = invoke(route, request, kwargs) if plain is None else plain(route.endpoint, request)
    return finish_inline(coroutine, route, exchange.common, exchange.head_only)


def answer(exchange: Exchange, response: typing.Any) -> None:
    """Hand what a handler or chain returned to the exchange's connection, encoded (a
    response that cannot be encoded is answered as a failure)."""
    try:
        if not isinstance(response, Response):
            response = to_response(response)
        data = None if response.streaming else response.encode(exchange.common, exchange.head_only)
    except HANDLER_ERRORS as exc:
        response, data = failure(exchange, exc)
    exchange.connection.complete(exchange, response, data)


def overloaded() -> Response:
    """The 503 of admission control (--max-queue, --queue-timeout, --limit-concurrency)."""
    return error_response(503, "Service Unavailable", _RETRY_HEADERS)


def common_now(exchange: Exchange) -> bytes:
    """The header lines every response on the exchange's connection carries, as the
    protocol chose them for it (HttpProtocol._handle), with the current Date."""
    worker = exchange.connection.worker
    if not exchange.keep_alive:
        return worker.common_close
    return worker.common_keep_alive if exchange.request.http_version == "1.1" else worker.common_keep_alive_10


def failure(exchange: Exchange, exc: BaseException) -> tuple[Response, bytes]:
    """The response, and its bytes, for an exception out of a handler (or out of binding its
    parameters). Always an answer: if even the error response cannot be built (an
    HTTPException with a header that would split the response, a detail JSON cannot hold),
    a plain 500."""
    route = exchange.route
    try:
        response = _failure(route, exc)
        return response, response.encode(exchange.common, exchange.head_only)
    except Exception:
        where = f"{route.method} {route.path}" if route is not None else "request"
        logger.exception("could not build the error response for %s (for %r)", where, exc)
        response = error_response(500, "Internal Server Error")
        return response, response.encode(exchange.common, exchange.head_only)


def _failure(route: Route | None, exc: BaseException) -> Response:
    if isinstance(exc, HTTPException):
        return error_response(exc.status_code, exc.detail, exc.headers)
    if isinstance(exc, RequestValidationError):
        return error_response(422, exc.errors)
    if isinstance(exc, BadRequest):
        return error_response(400, str(exc))
    where = f"{route.method} {route.path}" if route is not None else "request"
    logger.error("Exception in handler for %s", where, exc_info=(type(exc), exc, exc.__traceback__))
    return error_response(500, "Internal Server Error")


class Executor:
    lane: typing.Any = None  # the CPU lane's client (cpu_lane.LaneClient), when one runs

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: typing.Any, *, request_timeout: float = 0.0,
                 limit_concurrency: int = 0, inline_batch: bool = True) -> None:
        self.loop = loop
        self.pool = pool
        inline.thread = threading.get_ident()  # the loop's thread
        self.request_timeout = request_timeout  # for routes without a timeout of their own; 0: none
        self.limit_concurrency = limit_concurrency  # 0: none
        self.tasks = 0  # handlers running as Tasks
        self.pipeline_tasks = 0  # of which chains around a def handler (their job counts too)
        # Refusals since the last report, by cause (the tick logs one line, not one each).
        self.refused = {"max-queue": 0, "limit-concurrency": 0, "queue-timeout": 0}
        # A def route's job's `done`: _sync_done, its usual case without a frame (ext/pool.c).
        self._sync_job_done = SyncDone(self._sync_done)
        # Routes the connection runs straight, without start, each with how: whether its
        # bare handler takes the request (run_inline), the PlainInvoke that binds and calls
        # it, its chain's run_inline (run_chain), or for a `def` handler the pool hand-off's parts (see prepare: decided once per route,
        # when the worker starts; ext/connection.c reads it).
        self.straight: dict[Route, typing.Any] = {}
        # Where the connection defers a straight route's request, to be run with the loop
        # turn's others (--inline-batch, ext/batch.c); None: each at once.
        self.batch = InlineBatch(loop.call_soon, self._broken) if inline_batch else None

    def prepare(self, routes: typing.Iterable[Route]) -> None:
        """Decide once per route, after the app compiled its pipelines, which routes the
        connection runs straight, without start's frame and checks: an `async def` handler
        that cannot suspend, with nothing around it and nothing to bind (run_inline) or
        parameters a PlainInvoke binds (start's PlainInvoke branch), a compiled chain that
        cannot suspend (start's first branch, run_chain, in C), and a
        `def` handler with nothing around it and nothing to bind, not for the CPU lane
        (start's SYNC branch, in C: `(admit, done, run_in, job, refuse)`). None of them when
        --limit-concurrency is set: start checks it for every request."""
        straight: dict[Route, typing.Any] = {}
        hand_off = (self.pool.admit, self._sync_job_done, run_in, run_sync, self._refuse)
        for route in () if self.limit_concurrency else routes:
            if route.pipeline is not None:
                if route.pipeline.run_inline is not None:
                    straight[route] = route.pipeline.run_inline
            elif route.binding.trivial:
                if route.kind is ASYNC_INLINE:
                    straight[route] = route.binding.pass_request
                elif route.kind is SYNC and not route.cpu_bound:
                    straight[route] = hand_off
            elif route.kind is ASYNC_INLINE and type(route.binding.invoke) is PlainInvoke:
                straight[route] = route.binding.invoke
        self.straight = straight

    def _broken(self, exchange: Exchange, exc: BaseException) -> None:
        """An error out of answering a batched request, not out of its handler (that one is
        a 500): what data_received raising would have done, the error logged and that
        connection closed, the rest of the batch answered."""
        connection = exchange.connection
        self.loop.call_exception_handler({
            "message": "answering a batched inline request failed", "exception": exc, "protocol": connection})
        if connection.transport is not None:
            connection.transport.abort()

    def start(self, exchange: Exchange) -> None:
        """Run the exchange's route's handler; `connection.complete(...)` follows on the loop."""
        if self.limit_concurrency and self.in_flight() >= self.limit_concurrency:
            self._refuse(exchange, "limit-concurrency")
            return
        route = exchange.route
        pipeline = route.pipeline
        if pipeline is not None:  # hooks, middleware or exception handlers around it
            chain = pipeline.run_inline
            if chain is None:
                self.start_pipeline(exchange, pipeline)
                return
            # A chain that cannot suspend: one plain call (pipeline.Pipeline._compile_inline),
            # here rather than in start_pipeline (a frame less on its every request). In a
            # context of its own (what the chain sets stays with its request), and encoded,
            # header fields too, in one C call (ext/chain.c).
            inline.request = request = exchange.request
            try:
                response, data = run_chain(chain, request, exchange.common, exchange.head_only)
            except HANDLER_ERRORS as exc:  # SystemExit out of a handler: still one answer
                response, data = failure(exchange, exc)
            finally:
                inline.request = None
            exchange.connection.complete(exchange, response, data)
            return
        request = exchange.request
        binding = route.binding
        if binding.trivial:
            kwargs = None
        else:
            plain = binding.invoke
            if plain is not None and route.kind is ASYNC_INLINE:
                # Bound and called in one C call (binding.py's PlainInvoke): no dict of
                # keyword arguments.
                run_inline(exchange, route, request, None, plain)
                return
            try:
                bind = binding.bind  # (loaded, then called: see invoke)
                kwargs = bind(request)
            except (RequestValidationError, BadRequest) as exc:
                exchange.connection.complete(exchange, *failure(exchange, exc))
                return
        if route.cpu_bound and self.lane is not None:  # in another process: worker/cpu_lane.py
            return self.lane.start(self, exchange)
        kind = route.kind
        if kind is SYNC:
            exchange.owed = True  # before the job exists: its thread checks it
            # Context.run unbound, the copy its first argument: no bound method made per job.
            if not self.pool.admit(self._sync_job_done, run_in, copy_context(), run_sync, exchange, kwargs):
                exchange.owed = False
                self._refuse(exchange, "max-queue")
        elif kind is ASYNC_INLINE:
            run_inline(exchange, route, request, kwargs)
        else:
            exchange.owed = True
            exchange.task = self.loop.create_task(_run_task(self, exchange, kwargs))
            self.tasks += 1

    def start_pipeline(self, exchange: Exchange, pipeline: typing.Any,
                       refused: HTTPException | None = None) -> None:
        """Through the route's compiled chain (or the app's, around the 404 or 405 `refused`).
        A chain that may suspend runs as a Task from the start: code in it may rely on a
        current Task (asyncio.timeout, TaskGroup, anyio). One that cannot (hooks and handler
        that never await) is driven right here, in a context of its own, and costs no Task
        (one written out as `run_inline`: by `start`)."""
        # (A chain with `run_inline` is run by `start`; the unmatched chain has no route, so
        # may suspend, and never has one.)
        if pipeline.direct is not None:  # a plan and nothing around it (pipeline.DirectPlan)
            exchange.route = pipeline.direct
            self.start(exchange)
            return
        context = contextvars.copy_context()
        if refused is not None:
            context.run(refusal.set, refused)
        request = exchange.request
        if pipeline.may_suspend:
            exchange.owed = True
            exchange.task = self.loop.create_task(
                _carry_on(self, exchange, pipeline, pipeline.run(request), False, None), context=context)
            self.tasks += 1
            self.pipeline_tasks += pipeline.sync_route
            return
        coroutine = pipeline.run(request)
        inline.request = request
        try:
            response = context.run(drive, coroutine)
        except Suspended as suspended:
            yielded = suspended.args[0]
        except HANDLER_ERRORS as exc:  # SystemExit out of a handler: still one answer
            exchange.connection.complete(exchange, *failure(exchange, exc))
            return
        else:
            answer(exchange, response)
            return
        finally:
            inline.request = None
        # It suspended after all (an exception handler that runs in the pool): a Task goes
        # on from where it stopped, in the same context.
        exchange.owed = True
        exchange.task = self.loop.create_task(
            _carry_on(self, exchange, pipeline, coroutine, True, yielded), context=context)
        self.tasks += 1

    def run_in_pool(self, fn: typing.Callable[..., typing.Any], *args: typing.Any) -> asyncio.Future[typing.Any]:
        """`fn(*args)` in the pool for a chain (see pipeline.py), admitted as a direct sync
        request is (--max-queue, --queue-timeout: 503); a chain cancelled while it waits
        (its timeout) abandons the thread to the job, as a direct sync request does."""
        future = self.loop.create_future()
        pool = self.pool

        def done(result: typing.Any, error: BaseException | None) -> None:
            if future.cancelled():
                pool.reclaim()  # the abandoned job is back: its thread may go
            elif type(error) is QueueTimeout:
                self.refused["queue-timeout"] += 1
                future.set_exception(HTTPException(503, "Service Unavailable", _RETRY_HEADERS))
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        if not pool.admit(done, fn, *args):
            self.refused["max-queue"] += 1
            raise HTTPException(503, "Service Unavailable", _RETRY_HEADERS)
        future.add_done_callback(_abandon_if_cancelled(pool))
        return future

    def in_flight(self) -> int:  # (pipeline Tasks of def routes are counted by their pool job)
        """Requests whose handler runs or waits: Tasks, and the pool's jobs. The pool's count
        includes a job abandoned by its timeout (it holds a thread until it returns) and
        background work, which take capacity as much as requests do."""
        pool = self.pool
        return self.tasks - self.pipeline_tasks + pool.queued + pool.busy

    def deliver(self, exchange: Exchange, response: typing.Any) -> None:
        """What a Task produced, unless the request has been answered already (timed out)."""
        if exchange.owed:
            exchange.owed = False
            exchange.task = None
            self.tasks -= 1
            answer(exchange, response)

    def deliver_failure(self, exchange: Exchange, exc: BaseException) -> None:
        """What a Task raised (logged, as a 500 is, even when the request has been answered)."""
        self.deliver_encoded(exchange, *failure(exchange, exc))

    def deliver_encoded(self, exchange: Exchange, response: Response, data: bytes) -> None:
        """A Task's response already encoded (a failure's, the CPU lane's bytes), unless the
        request has been answered already (timed out)."""
        if exchange.owed:
            exchange.owed = False
            exchange.task = None
            self.tasks -= 1
            exchange.connection.complete(exchange, response, data)

    def _refuse(self, exchange: Exchange, cause: str) -> None:
        self.refused[cause] += 1
        response = overloaded()
        exchange.connection.complete(exchange, response, response.encode(exchange.common, exchange.head_only))

    def _sync_done(self, exchange: Exchange, error: BaseException | None) -> None:
        """Back on the loop with the exchange _run_sync filled in: its response and bytes,
        or (a `def` handler that returned an awaitable) the awaitable and no bytes."""
        if error is not None:
            if type(error) is QueueTimeout:
                self._stale(*error.args)
            else:  # _run_sync catches everything; this is a bug guard
                logger.error("thread pool job failed", exc_info=(type(error), error, error.__traceback__))
            return
        if not exchange.owed:  # answered 504 meanwhile: the late result is dropped
            self._dropped(exchange)
            return
        response, data = exchange.response, exchange.data
        if data is None and not isinstance(response, Response):
            self._await_returned(exchange, response)
            return
        exchange.owed = False
        exchange.connection.complete(exchange, response, data)

    def _stale(self, context: typing.Any, run: typing.Any, exchange: Exchange, kwargs: typing.Any) -> None:
        """A job (the arguments `start` gave it) waited past --queue-timeout and was not
        run: answered 503, unless its request timed out meanwhile."""
        if exchange.owed:
            exchange.owed = False
            self._refuse(exchange, "queue-timeout")
        else:
            self.pool.reclaim()  # its abandon() made room for a thread it never took

    def _dropped(self, exchange: Exchange) -> None:
        """The late result of a job whose request timed out: its thread is back."""
        self.pool.reclaim()
        if inspect.iscoroutine(exchange.response):
            exchange.response.close()  # never awaited: say nothing about it

    def _await_returned(self, exchange: Exchange, awaitable: typing.Awaitable[typing.Any]) -> None:
        """A `def` handler returned an awaitable: await it on the loop, and say so once."""
        route = exchange.route
        if not route.warned_awaitable:
            route.warned_awaitable = True
            logger.warning(
                "handler for %s %s is a plain callable that returned an awaitable; it is awaited "
                "on the event loop, but declaring it `async def` saves a thread pool round trip",
                route.method, route.path)

        async def finish() -> None:
            try:
                response = await awaitable
            except HANDLER_ERRORS as exc:
                self.deliver_failure(exchange, exc)
            else:
                self.deliver(exchange, response)

        exchange.task = self.loop.create_task(finish())
        self.tasks += 1

    # -- once a tick ---------------------------------------------------------------------------

    def expire(self, connections: typing.Iterable[typing.Any], within: float) -> None:
        """Answer 504 for every request whose handler has run past its timeout. One that
        will be due within `within` seconds (before the next call) gets a timer of its own,
        so a timeout fires on time without costing a timer per request."""
        now = perf_counter()
        for conn in connections:
            exchange = conn.exchange
            if exchange is None or not exchange.owed:
                continue
            limit = self.timeout_of(exchange.route)  # type: ignore[arg-type]
            if not limit:
                continue
            left = exchange.started + limit - now
            if left <= 0:
                self._time_out(exchange, limit)
            elif left < within:
                self.loop.call_later(left, self._expire_one, exchange, limit)

    def timeout_of(self, route: Route | None) -> float:
        return self.request_timeout if route is None or route.timeout is None else route.timeout

    def report(self) -> None:
        """Log the refusals since the last report, in one line."""
        refused = self.refused
        total = sum(refused.values())
        if total:
            causes = ", ".join(f"{count} by --{cause}" for cause, count in refused.items() if count)
            logger.warning("overloaded: refused %d requests with 503 since the last report (%s)",
                           total, causes)
            for cause in refused:
                refused[cause] = 0

    def _expire_one(self, exchange: Exchange, limit: float) -> None:
        if exchange.owed:
            self._time_out(exchange, limit)

    def _time_out(self, exchange: Exchange, limit: float) -> None:
        route, request = exchange.route, exchange.request
        where = f"{route.method} {route.path}" if route is not None else f"{request.method} {request.path}"
        exchange.owed = False
        task, exchange.task = exchange.task, None
        if task is not None:
            self.tasks -= 1
            task.cancel()
            fate = "its Task is cancelled"
        else:
            self.pool.abandon()
            fate = "its pool thread is abandoned to it and its result will be dropped"
        logger.warning("request timed out: the handler for %s ran for over %g s (%s); "
                       "answered 504", where, limit, fate)
        response = error_response(504, "Gateway Timeout")
        exchange.connection.complete(exchange, response, response.encode(common_now(exchange), exchange.head_only))


def _run_sync(exchange: Exchange, kwargs: dict[str, typing.Any] | None) -> Exchange:
    """In a pool thread, inside a copy of the loop's context: the handler and its
    serialisation, so the loop only writes the bytes. The outcome goes into the exchange.

    The reference of `run_sync` (_native.SyncJob, ext/pool.c), which does the usual case
    (nothing bound but the request, a JSONResponse back) without a Python frame and hands
    anything else back to this function, `_settle` or `failure`."""
    if not exchange.owed:  # timed out while it waited: nobody wants it run
        return exchange
    request = exchange.request
    current_request.set(request)
    route: Route = exchange.route  # type: ignore[assignment]
    try:
        if kwargs is None and route.binding.pass_request:  # the usual `(request)`: no frame more
            result = route.endpoint(request)
        else:
            result = invoke(route, request, kwargs)
    except HANDLER_ERRORS as exc:
        exchange.response, exchange.data = failure(exchange, exc)
        return exchange
    return _settle(exchange, result)


def _settle(exchange: Exchange, result: typing.Any) -> Exchange:
    """What a def handler returned, made a response and encoded into the exchange (or, an
    awaitable, left in it for the loop)."""
    try:
        # A Response first: the Awaitable ABC's check costs a Python frame of its own.
        if not isinstance(result, Response):
            if inspect.isawaitable(result):
                exchange.response = result  # awaited on the loop (see Executor._await_returned)
                return exchange
            result = to_response(result)
        exchange.data = None if result.streaming else result.encode(exchange.common, exchange.head_only)
        exchange.response = result
    except HANDLER_ERRORS as exc:
        exchange.response, exchange.data = failure(exchange, exc)
    return exchange


run_sync = SyncJob(current_request, JSONResponse, encode, _settle, failure, _run_sync)


def _abandon_if_cancelled(pool: typing.Any) -> typing.Callable[[asyncio.Future[typing.Any]], None]:
    def check(future: asyncio.Future[typing.Any]) -> None:
        if future.cancelled():
            pool.abandon()
    return check


async def _carry_on(executor: Executor, exchange: Exchange, pipeline: typing.Any,
                    coroutine: typing.Coroutine[typing.Any, typing.Any, Response], started: bool,
                    yielded: typing.Any) -> None:
    """A chain as a Task: from its start, or (`started`) from where it first suspended."""
    current_request.set(exchange.request)
    try:
        try:
            response = await (_resume(coroutine, yielded) if started else coroutine)
        except HANDLER_ERRORS as exc:
            executor.deliver_failure(exchange, exc)
            return
    finally:
        if pipeline.sync_route and not started:  # counted by start_pipeline
            executor.pipeline_tasks -= 1
    executor.deliver(exchange, response)


@types.coroutine
def _resume(coroutine: typing.Coroutine[typing.Any, typing.Any, typing.Any],
            yielded: typing.Any) -> typing.Generator[typing.Any, typing.Any, typing.Any]:
    """Go on driving a coroutine that was started outside any Task and suspended on
    `yielded` (a future): the Task that awaits this waits on that future, and everything it
    sends or throws (a cancellation) goes on into the coroutine."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:
            try:
                yielded = coroutine.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value


async def _run_task(executor: Executor, exchange: Exchange, kwargs: dict[str, typing.Any] | None) -> None:
    current_request.set(exchange.request)
    try:
        response = await invoke(exchange.route, exchange.request, kwargs)  # type: ignore[arg-type]
    except HANDLER_ERRORS as exc:
        executor.deliver_failure(exchange, exc)
        return
    executor.deliver(exchange, response)
