"""A Catzilla app served by an ASGI server (uvicorn, hypercorn, granian): `app` itself is
the ASGI 3 application (`uvicorn module:app`), and this is what it hands the calls to.

What is the same as under our own server: the routes and how one is chosen, parameter
binding, the compiled middleware and hooks, exception handlers, lifespan and startup hooks,
and the hybrid executor: `def` handlers (and a chain's `def` hooks) run in the worker's own
thread pool, `async def` ones on the event loop. What the ASGI server owns: the
connection, HTTP parsing, keep-alive and its timeouts, the access log. The settings come
from CATZILLA_* variables (there is no command line of ours): CATZILLA_THREADS,
CATZILLA_MAX_BODY_SIZE, CATZILLA_REQUEST_TIMEOUT (a route's own `timeout=` overrides it;
answered 504 as under our server), ... Not applied here: the stats block and the probes,
which belong to our server.

Where it sits: a server front-end, the ASGI counterpart of catzilla.worker.protocol, so it
sits with the worker (it runs jobs in catzilla.worker.pool) and the framework never
imports it, except that `Catzilla.__call__` reaches it lazily (declared in pyproject.toml).
"""
from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import typing

from .background_tasks import BackgroundRunner, current_request
from .config import Config
from .datastructures import Address
from .errors import HTTPException
from .kinds import HandlerKind
from .mounts import send_response
from .pipeline import call_handler, default_error_response, refusal, router_refusal
from .request import Request
from .responses import Response, error_response, to_response
from .websockets import WebSocket, run_endpoint
from .worker.pool import QUEUE_PER_THREAD, QueueTimeout, ThreadPool

if typing.TYPE_CHECKING:
    from .app import Catzilla

__all__ = ["ASGIAdapter"]

logger = logging.getLogger("catzilla.asgi")

SYNC = HandlerKind.SYNC
_RETRY = {"retry-after": "1"}


def _sync_job(route: typing.Any, request: Request) -> typing.Any:
    """In a pool thread: bind, call, and make the response (its body rendered there)."""
    current_request.set(request)
    result = call_handler(route, request)
    return result if inspect.isawaitable(result) or isinstance(result, Response) else to_response(result)


def _scope_request(scope: typing.Mapping[str, typing.Any], method: str, body: bytes) -> Request:
    path = scope["path"]
    root_path = scope.get("root_path", "")
    if root_path and path.startswith(root_path):  # the ASGI spec: path includes root_path
        path = path[len(root_path):] or "/"
    client = scope.get("client")
    return Request(method, path, scope.get("query_string", b"").decode("latin-1"),
                   [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]],
                   body, Address(client[0], client[1]) if client else None, scope.get("http_version", "1.1"))


class ASGIAdapter:
    """`await adapter(scope, receive, send)` for `http`, `websocket` and `lifespan` scopes."""

    def __init__(self, app: "Catzilla", config: Config | None = None) -> None:
        self.app = app
        self.config = config
        self.pool: ThreadPool | None = None
        self.runner: BackgroundRunner | None = None
        self.max_body_size = 0
        self.request_timeout = 0.0  # for routes without a timeout of their own; 0: none
        self.root_path: str | None = None  # the server's (uvicorn --root-path), from the first scope

    async def __call__(self, scope: typing.MutableMapping[str, typing.Any],
                       receive: typing.Callable[[], typing.Awaitable[typing.Any]],
                       send: typing.Callable[[typing.Any], typing.Awaitable[None]]) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.pool is None:  # a server that sends no lifespan events
                self._start()
            if self.root_path is None:
                self._adopt_root_path(scope)
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            if self.pool is None:
                self._start()
            if self.root_path is None:
                self._adopt_root_path(scope)
            await self._websocket(scope, receive, send)
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    def _start(self) -> None:
        """The pool and the compiled chains, on the server's event loop."""
        config = self.config or Config.from_env()
        loop = asyncio.get_running_loop()
        max_queue = config.max_queue if config.max_queue is not None else QUEUE_PER_THREAD * config.threads
        self.pool = ThreadPool(loop, config.threads, max_queue=max_queue, queue_timeout=config.queue_timeout)
        self.runner = BackgroundRunner(loop, self.pool)
        self.max_body_size = config.max_body_size
        self.request_timeout = config.request_timeout
        self.app.prepare(self.run_in_pool)
        if Request.app is None:  # the outermost app (not one mounted in another Catzilla app)
            Request.app = self.app
            self.runner.install()

    def _adopt_root_path(self, scope: typing.Mapping[str, typing.Any]) -> None:
        """The ASGI server's root path (uvicorn's --root-path; a lifespan scope has none, so
        the first request's says it) is the app's, as --root-path is under our server:
        `request.url`, the OpenAPI document's `servers` and the docs pages' schema URL
        follow it. Catzilla(root_path=) wins (FastAPI's rule); a Catzilla app mounted in
        another app keeps its mount's root path per request, in the scope."""
        self.root_path = root_path = scope.get("root_path", "")
        app = self.app
        if root_path and not app.root_path and Request.app is app:
            app.root_path = Request.root_path = root_path
            app.openapi_schema = None  # made again, with the root path in `servers`
            app.openapi()

    async def _lifespan(self, receive: typing.Callable[[], typing.Awaitable[typing.Any]],
                        send: typing.Callable[[typing.Any], typing.Awaitable[None]]) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.pool is None:
                        self._start()
                    await self.app.startup()
                except BaseException as exc:
                    logger.exception("application startup failed")
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    if self.runner is not None:
                        await self.runner.wait_idle()
                    await self.app.shutdown()
                finally:
                    if self.pool is not None:
                        self.pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def run_in_pool(self, fn: typing.Callable[..., typing.Any], *args: typing.Any) -> asyncio.Future[typing.Any]:
        """`fn(*args)` in the pool, admitted as under our server (--max-queue,
        --queue-timeout: 503); a caller that stops waiting (its timeout) abandons the
        thread to the job, which the pool makes up for until the job returns."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        pool = self.pool
        assert pool is not None

        def done(result: typing.Any, error: BaseException | None) -> None:
            if future.cancelled():
                pool.reclaim()
                return
            if type(error) is QueueTimeout:
                future.set_exception(HTTPException(503, "Service Unavailable", _RETRY))
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        if not pool.admit(done, fn, *args):
            raise HTTPException(503, "Service Unavailable", _RETRY)
        future.add_done_callback(lambda future: future.cancelled() and pool.abandon())
        return future

    async def _http(self, scope: typing.MutableMapping[str, typing.Any],
                    receive: typing.Callable[[], typing.Awaitable[typing.Any]],
                    send: typing.Callable[[typing.Any], typing.Awaitable[None]]) -> None:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if message.get("more_body", False) or len(body) > self.max_body_size:
            body = await self._rest_of_body(body, receive)
            if body is None:  # the client left before the body was whole
                return
            if len(body) > self.max_body_size:
                await send_response(error_response(413, "Content Too Large"), send)
                return
        request = _scope_request(scope, scope["method"], body)
        response = await self._respond(request)
        try:
            await send_response(response, send, request.method == "HEAD", self.run_in_pool)
        finally:
            request.responded = True
            if request.background:
                self.runner.run(request.background)  # type: ignore[union-attr]

    async def _websocket(self, scope: typing.MutableMapping[str, typing.Any],
                         receive: typing.Callable[[], typing.Awaitable[typing.Any]],
                         send: typing.Callable[[typing.Any], typing.Awaitable[None]]) -> None:
        """A WebSocket route, run as under our server (catzilla.websockets.run_endpoint) with
        the ASGI server's receive and send; no such route: refused (a close before accept)."""
        request = _scope_request(scope, "GET", b"")
        route, params, _ = self.app.websocket_router.resolve("GET", request.path)
        if route is None:
            await send({"type": "websocket.close", "code": 1000})  # refused before accept: a 403
            return
        request.path_params = params or {}
        request.scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
        socket = WebSocket.from_request(request, receive, send,
                                        http_denial="websocket.http.response" in (scope.get("extensions") or {}))
        await run_endpoint(route, socket, self.run_in_pool)

    async def _rest_of_body(self, body: bytes, receive: typing.Callable[[], typing.Awaitable[typing.Any]]
                            ) -> bytes | None:
        """The body after its first message: whole, or cut short once larger than
        --max-body-size (no more is read), or None when the client left."""
        chunks, size, more = [body], len(body), True
        while more and size <= self.max_body_size:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _respond(self, request: Request) -> Response:
        app = self.app
        route, params, allow = app.router.resolve(request.method, request.path)
        if route is None:
            refused = router_refusal(allow)
            if app.unmatched_pipeline is not None:
                refusal.set(refused)  # in this request's own Task's context
                return await app.unmatched_pipeline.run(request)
            return error_response(refused.status_code, refused.detail, refused.headers)
        if params is not None:
            request.path_params = params
        current_request.set(request)
        call = route.pipeline.run(request) if route.pipeline is not None else self._call(route, request)
        limit = self.request_timeout if route.timeout is None else route.timeout
        try:
            if limit:
                return await asyncio.wait_for(call, limit)
            return await call
        except asyncio.TimeoutError:
            # As our server's executor answers it (catzilla.worker.executor): the Task is
            # cancelled; a pool job goes on in its thread, abandoned (run_in_pool's callback).
            logger.warning("request timed out: the handler for %s %s ran for over %g s; answered 504",
                           route.method, route.path, limit)
            return error_response(504, "Gateway Timeout")
        except (Exception, SystemExit) as exc:
            return self._failure(route, exc)

    async def _call(self, route: typing.Any, request: Request) -> Response:
        if route.kind is SYNC:
            result = await self.run_in_pool(contextvars.copy_context().run, _sync_job, route, request)
        else:
            result = call_handler(route, request)
        if inspect.isawaitable(result):
            result = await result
        return result if isinstance(result, Response) else to_response(result)

    @staticmethod
    def _failure(route: typing.Any, exc: BaseException) -> Response:
        response = default_error_response(exc)
        if response is None:
            logger.error("Exception in handler for %s %s", route.method, route.path,
                         exc_info=(type(exc), exc, exc.__traceback__))
            response = error_response(500, "Internal Server Error")
        return response
