"""Testing an app without a socket: `from catzilla.testclient import TestClient`.

    with TestClient(app) as client:          # startup hooks and the lifespan run here
        response = client.get("/items/1")    # httpx's interface

The requests go through the real server code: each is written as HTTP/1.1 bytes into an
HttpProtocol (parsing, routing, binding, the hybrid executor with its thread pool,
middleware, response encoding) over an in-memory transport, on an event loop of the
client's own (a thread) for `TestClient`, or the test's running loop for `AsyncTestClient`.
With `raise_server_exceptions=True` (the default, as Starlette's), an exception the
server would log as unhandled (and answer 500) is raised in the test instead.

`client.websocket_connect(path)` is Starlette's too (catzilla.testclient.websocket), over
the real WebSocket connection. The in-memory transports are in catzilla.testclient.memory.

Layer: this drives the worker, so it sits beside catzilla.serve, above the worker; the
framework never imports it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import typing

import httpx

from .. import stats_report
from ..config import Config
from ..request import Request
from ..worker.monitor import LoopMonitor
from ..worker.protocol import HttpProtocol
from ..worker.server import Worker
from .memory import MemoryTransport, catch, encode_request, errors_caught
from .websocket import AsyncWebSocketTestSession, WebSocketDenialResponse, WebSocketTestSession

if typing.TYPE_CHECKING:
    from ..app import Catzilla

__all__ = ["TestClient", "AsyncTestClient", "CatzillaTransport", "AsyncCatzillaTransport",
           "WebSocketTestSession", "AsyncWebSocketTestSession", "WebSocketDenialResponse"]

# Seconds a sync client waits for one response before failing the test (a handler that
# never answers must not hang the test run).
DEFAULT_TIMEOUT = 30.0


def _no_tick() -> None:
    """A stopped client's worker: its clock stops at the next tick."""


class _Server:
    """One worker of the app, without sockets, on the loop it is started on."""

    def __init__(self, app: "Catzilla", config: Config, raise_server_exceptions: bool,
                 client: tuple[str, int], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.app = app
        self.timeout = timeout
        self.config = config
        self.raise_server_exceptions = raise_server_exceptions
        self.client = client
        self.worker: Worker | None = None
        self.lifespan = False

    async def start(self, lifespan: bool) -> None:
        loop = asyncio.get_running_loop()
        worker = Worker(self.app, self.config, [])
        worker.build(loop)
        worker.runner.install()
        worker._tick()  # the Date header, and the tick that checks timeouts
        self.worker = worker
        Request.app = self.app
        catch(+1)
        if lifespan:
            await self.app.startup()
            worker.access.decide()
            self.lifespan = True
        worker.started = True
        if self.config.loop_block_threshold > 0:  # asked for: the server's blocked-loop detector
            worker.monitor = LoopMonitor(loop, self.app.router.routes, self.config.loop_block_threshold,
                                         worker.stats_slot)
            worker.monitor.start()

    async def stop(self) -> None:
        worker, self.worker = self.worker, None
        if worker is None:
            return
        try:
            await worker.runner.wait_idle()
            if self.lifespan:
                await self.app.shutdown()
        finally:
            if worker.monitor is not None:
                worker.monitor.stop()
            worker.draining = True
            worker._tick = _no_tick  # type: ignore[method-assign]  # the tick reschedules itself
            worker.pool.shutdown(wait=False)
            stats_report.install(None)
            catch(-1)

    async def exchange(self, request: httpx.Request) -> httpx.Response:
        worker = self.worker
        assert worker is not None
        transport = MemoryTransport(self.client, request.method == "HEAD")
        protocol = HttpProtocol(worker)
        protocol.connection_made(transport)
        caught: list[BaseException] = []
        context = contextvars.copy_context()
        context.run(errors_caught.set, caught)
        try:
            context.run(protocol.data_received, encode_request(request))
            try:
                await asyncio.wait_for(transport.done, self.timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no response from the app within {self.timeout} s "
                                   f"({request.method} {request.url.path})") from None
            await worker.runner.wait_idle()  # background tasks, as Starlette's client waits
        finally:
            protocol.connection_lost(None)
        if caught and self.raise_server_exceptions:
            raise caught[0]
        return httpx.Response(transport.status, headers=transport.headers, content=b"".join(transport.body),
                              request=request)


def _config(config: Config | None) -> Config:
    # No access log lines and no loop monitor in tests unless asked for.
    return config if config is not None else Config(access_log=False, loop_block_threshold=0)


class AsyncCatzillaTransport(httpx.AsyncBaseTransport):
    """An httpx transport into the app, on the running loop (see AsyncTestClient)."""

    def __init__(self, app: "Catzilla", *, raise_server_exceptions: bool = True,
                 client: tuple[str, int] = ("testclient", 50000), config: Config | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.server = _Server(app, _config(config), raise_server_exceptions, client, timeout)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.server.worker is None:  # used without `async with`: no lifespan
            await self.server.start(lifespan=False)
        return await self.server.exchange(request)

    async def aclose(self) -> None:
        await self.server.stop()


class CatzillaTransport(httpx.BaseTransport):
    """An httpx transport into the app: its worker runs on an event loop in a thread of
    its own, and each request waits for its response (see TestClient)."""

    def __init__(self, app: "Catzilla", *, raise_server_exceptions: bool = True,
                 client: tuple[str, int] = ("testclient", 50000), config: Config | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.server = _Server(app, _config(config), raise_server_exceptions, client, timeout)
        self.timeout = timeout + 1.0  # the server's own wait fails first, with its message
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def start(self, lifespan: bool) -> None:
        if self.loop is not None:
            return
        import uvloop

        loop = self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=loop.run_forever, name="catzilla-testclient", daemon=True)
        self.thread.start()
        try:
            self.call(self.server.start(lifespan))
        except BaseException:
            self.close()
            raise

    def call(self, coroutine: typing.Coroutine[typing.Any, typing.Any, typing.Any]) -> typing.Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:  # (not the built-in one before Python 3.11)
            if future.done():  # the coroutine's own, raised through the future
                raise
            future.cancel()
            raise TimeoutError(f"no response from the app within {self.timeout} s") from None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.loop is None:  # used without `with`: no lifespan
            self.start(lifespan=False)
        request.read()
        return self.call(self.server.exchange(request))

    def close(self) -> None:
        loop, self.loop = self.loop, None
        if loop is None:
            return
        try:
            self.loop = loop
            self.call(self.server.stop())
        finally:
            self.loop = None
            loop.call_soon_threadsafe(loop.stop)
            if self.thread is not None:
                self.thread.join(self.timeout)
            loop.close()


class TestClient(httpx.Client):
    """Starlette's TestClient for a Catzilla app: `with TestClient(app) as client:` runs the
    startup hooks and the lifespan on entering and the shutdown on leaving; without
    `with`, requests work and no lifespan runs."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, app: "Catzilla", base_url: str = "http://testserver", *,
                 raise_server_exceptions: bool = True, root_path: str = "",
                 cookies: typing.Any = None, headers: typing.Mapping[str, str] | None = None,
                 follow_redirects: bool = True, client: tuple[str, int] = ("testclient", 50000),
                 config: Config | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.app = app
        self.app_transport = CatzillaTransport(app, raise_server_exceptions=raise_server_exceptions,
                                               client=client, config=config, timeout=timeout)
        super().__init__(base_url=base_url + root_path, transport=self.app_transport, cookies=cookies,
                         headers={"user-agent": "testclient", **(headers or {})},
                         follow_redirects=follow_redirects)

    def __enter__(self) -> "TestClient":
        super().__enter__()
        self.app_transport.start(lifespan=True)
        return self

    def __exit__(self, *args: typing.Any) -> None:
        super().__exit__(*args)  # closes the transport: shutdown hooks, then the loop

    def websocket_connect(self, url: str, subprotocols: typing.Sequence[str] | None = None,
                          **kwargs: typing.Any) -> WebSocketTestSession:
        """Starlette's: a session to use in `with`; `kwargs` as for a request (headers=,
        params=, cookies=)."""
        return WebSocketTestSession(self.app_transport, self.build_request("GET", url, **kwargs),
                                    subprotocols or ())


class AsyncTestClient(httpx.AsyncClient):
    """TestClient for `async def` tests, on the test's own loop:
    `async with AsyncTestClient(app) as client: await client.get(...)`."""

    __test__ = False

    def __init__(self, app: "Catzilla", base_url: str = "http://testserver", *,
                 raise_server_exceptions: bool = True, root_path: str = "",
                 cookies: typing.Any = None, headers: typing.Mapping[str, str] | None = None,
                 follow_redirects: bool = True, client: tuple[str, int] = ("testclient", 50000),
                 config: Config | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.app = app
        self.app_transport = AsyncCatzillaTransport(app, raise_server_exceptions=raise_server_exceptions,
                                                    client=client, config=config, timeout=timeout)
        super().__init__(base_url=base_url + root_path, transport=self.app_transport, cookies=cookies,
                         headers={"user-agent": "testclient", **(headers or {})},
                         follow_redirects=follow_redirects)

    async def __aenter__(self) -> "AsyncTestClient":
        await super().__aenter__()
        if self.app_transport.server.worker is None:
            try:
                await self.app_transport.server.start(lifespan=True)
            except BaseException:
                await self.app_transport.aclose()
                raise
        return self

    def websocket_connect(self, url: str, subprotocols: typing.Sequence[str] | None = None,
                          **kwargs: typing.Any) -> AsyncWebSocketTestSession:
        """As TestClient's, for `async with`."""
        return AsyncWebSocketTestSession(self.app_transport, self.build_request("GET", url, **kwargs),
                                         subprotocols or ())
