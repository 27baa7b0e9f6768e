"""ext/connection.c against the Python it stands for: HttpProtocol's on_message_complete is
Connection's (the usual request served in C), and the Python way (_message_complete,
_handle, complete) must give every request the same bytes, counts and state."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import typing

import pytest

from catzilla import Catzilla, HTTPException, JSONResponse, PlainTextResponse, Request, Router
from catzilla.background_tasks import inline, schedule_task
from catzilla.config import Config
from catzilla.worker.protocol import HttpProtocol
from catzilla.worker.server import Worker


class PythonWay(HttpProtocol):
    """Every request the Python way: httptools calls this class's on_message_complete."""

    __slots__ = ()
    on_message_complete = HttpProtocol._message_complete
    complete = HttpProtocol._complete


class Counted:
    """The worker's stats slot, with what it is told kept (started is a clock: left out)."""

    def __init__(self, slot: typing.Any) -> None:
        self.slot = slot
        self.calls: list[tuple[typing.Any, ...]] = []

    def begin(self, row: int) -> float:
        self.calls.append(("begin", row))
        return self.slot.begin(row)

    def end(self, row: int, started: float, status: int, bytes_in: int, bytes_out: int) -> None:
        self.calls.append(("end", row, status, bytes_in, bytes_out))
        self.slot.end(row, started, status, bytes_in, bytes_out)


class Transport:
    """Just enough of asyncio.Transport for HttpProtocol, keeping what it is asked to do."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...
    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default
    def is_closing(self) -> bool:
        return self.closed
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


def make_app() -> Catzilla:
    app = Catzilla()
    ran: list[str] = []

    @app.get("/json")
    async def plain(request: Request) -> JSONResponse:
        return JSONResponse({"message": "Hello, World!"})

    @app.get("/bare")
    async def bare() -> dict[str, int]:
        return {"bare": 1}

    @app.get("/text")
    async def text(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi", headers={"x-a": "b"})

    @app.get("/fail")
    async def fail(request: Request) -> None:
        raise RuntimeError("boom")

    @app.get("/refuse")
    async def refuse(request: Request) -> None:
        raise HTTPException(418, "teapot")

    @app.get("/inline-seen")
    async def inline_seen(request: Request) -> dict[str, bool]:
        return {"same": inline.request is request}

    @app.get("/later")
    async def later(request: Request) -> dict[str, bool]:
        schedule_task(ran.append, "later")
        return {"queued": True}

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: int = 1) -> dict[str, int]:
        return {"item_id": item_id, "q": q}

    @app.get("/sync")
    def sync(request: Request) -> dict[str, str]:
        return {"ran": "pool"}

    @app.post("/echo")
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.body.decode())

    # Chains that cannot suspend: run straight from the connection (run_chain) too.
    chained = Router(prefix="/chained")

    @chained.before_request
    async def before(request: Request) -> PlainTextResponse | None:
        return PlainTextResponse("short", status_code=403) if "stop" in request.query_params else None

    @chained.after_request
    async def after(request: Request, response: typing.Any) -> typing.Any:
        if "raise" in request.query_params:
            raise RuntimeError("after-hook failed")
        response.headers["x-after"] = "1"
        return response

    @chained.get("/json")
    async def chained_json(request: Request) -> dict[str, bool]:
        return {"inline": inline.request is request}

    app.include_router(chained)
    return app


REQUESTS = [
    b"GET /json HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HEAD /json HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /bare HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /text HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /json HTTP/1.0\r\n\r\n",
    b"GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET /fail HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /refuse HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /inline-seen HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /later HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /items/42?q=3 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /items/x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /sync HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /json HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: https\r\n\r\n",
    b"GET /json HTTP/1.1\r\nHost: a\r\n\r\nGET /text HTTP/1.1\r\nHost: a\r\n\r\n",  # pipelined
    b"GET http://a/json HTTP/1.1\r\nHost: a\r\n\r\n",  # absolute form: the unusual head
    b"GET /json HTTP/1.1\r\n\r\n",  # no Host: refused
    b"GET /chained/json HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HEAD /chained/json HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /chained/json?stop=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /chained/json?raise=1 HTTP/1.1\r\nHost: a\r\n\r\n",
]


async def serve(protocol_class: type[HttpProtocol], data: bytes, **settings: typing.Any) -> dict[str, typing.Any]:
    """One request (or several pipelined) on a fresh connection of a fresh worker: what was
    written, and the state the connection and the worker are left in."""
    config = Config(loop_block_threshold=0, health_path="/health", **settings)
    worker = Worker(make_app(), config, [])
    worker.build(asyncio.get_running_loop())
    worker._tick()
    logged: list[tuple[typing.Any, ...]] = []  # what the access log is told, per response
    if worker.access_log:
        log_exchange = worker.access.exchange

        def exchange(exchange: typing.Any, status: int, size: int | None) -> None:
            logged.append((exchange.request.method, exchange.request.path, status, size))
            log_exchange(exchange, status, size)

        worker.access.exchange = exchange
    retired: list[int] = []
    worker.retire = lambda: retired.append(worker.handled)  # type: ignore[method-assign]
    transport = Transport()
    protocol = protocol_class(worker)
    protocol.connection_made(transport)  # type: ignore[arg-type]
    counted = None
    if protocol.stats_slot is not None:
        protocol.stats_slot = counted = Counted(protocol.stats_slot)
    expected = data.count(b" HTTP/1.")
    transport.waiter = asyncio.get_running_loop().create_future()
    protocol.data_received(data)
    for _ in range(200):  # a pool job, or the rest of a pipeline, answers later
        if b"".join(transport.written).count(b"HTTP/1.1 ") >= expected or transport.closed:
            break
        await asyncio.sleep(0.005)
    await worker.runner.wait_idle()
    worker.pool.shutdown(wait=False)
    return {
        "written": re.sub(rb"date: [^\r]*\r\n", b"", b"".join(transport.written)), "closed": transport.closed, "busy": protocol.busy,
        "exchange": protocol.exchange, "keep_alive": protocol.keep_alive, "handled": worker.handled,
        "retired": retired, "bytes_in": protocol.bytes_in, "reception": protocol.reception,
        "inline": inline.request, "pipeline": len(protocol.pipeline),
        "stats": None if counted is None else counted.calls, "logged": logged,
    }


@contextlib.contextmanager
def access_logger_at(level: int) -> typing.Iterator[None]:
    """A worker logs access lines only while its logger takes INFO (the default is WARNING)."""
    logger = logging.getLogger("catzilla.access")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


@pytest.mark.parametrize("settings", [{}, {"max_requests": 1}, {"keep_alive_timeout": 0}, {"stats": False},
                                      {"limit_concurrency": 5}, {"access_log": True}, {"inline_batch": False}],
                         ids=repr)
@pytest.mark.parametrize("data", REQUESTS, ids=lambda data: data.split(b"\r\n")[0].decode())
def test_the_c_way_is_the_python_way(data: bytes, settings: dict[str, typing.Any]) -> None:
    async def both() -> tuple[dict[str, typing.Any], dict[str, typing.Any]]:
        return await serve(HttpProtocol, data, **settings), await serve(PythonWay, data, **settings)

    with access_logger_at(logging.INFO if settings.get("access_log") else logging.WARNING):
        native, python = asyncio.run(both())
    assert native["written"], "no response"
    if not settings.get("access_log"):
        assert not native["logged"]
    assert native == python


def test_the_usual_request_runs_no_python_method_of_the_connection() -> None:
    """The point of ext/connection.c: the usual request goes through none of them."""
    called: list[str] = []

    class Watched(HttpProtocol):
        __slots__ = ()

        def _message_complete(self) -> None:
            called.append("_message_complete")
            super()._message_complete()

        def _handle(self, request: Request, keep_alive: bool) -> None:
            called.append("_handle")
            super()._handle(request, keep_alive)

        def complete(self, *args: typing.Any) -> None:
            called.append("complete")
            super().complete(*args)

    result = asyncio.run(serve(Watched, REQUESTS[0]))
    assert result["written"].startswith(b"HTTP/1.1 200 OK\r\n")
    assert called == []
    with access_logger_at(logging.INFO):  # the access log on keeps the usual request in C too
        result = asyncio.run(serve(Watched, REQUESTS[0], access_log=True))
    assert result["logged"] == [("GET", "/json", 200, len(result["written"]) + len(b"date: ") + 31)]
    assert called == []
    result = asyncio.run(serve(Watched, b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert result["written"].startswith(b"HTTP/1.1 404 ")
    assert called == ["_handle", "complete"]


class ClosingWorker(Worker):
    """A worker whose attribute is a property: the C way must not read the slot it shadows."""

    @property  # type: ignore[override]
    def close_connections(self) -> bool:
        return True

    @close_connections.setter
    def close_connections(self, value: bool) -> None:
        pass


def test_attributes_of_another_class_are_read_as_that_class_says() -> None:
    async def go() -> list[tuple[bytes, bool]]:
        loop = asyncio.get_running_loop()
        written = []
        for worker_class in (Worker, ClosingWorker, Worker):
            worker = worker_class(make_app(), Config(loop_block_threshold=0), [])
            worker.build(loop)
            worker._tick()
            transport = Transport()
            protocol = HttpProtocol(worker)
            protocol.connection_made(transport)  # type: ignore[arg-type]
            protocol.data_received(REQUESTS[0])
            await asyncio.sleep(0)  # the loop's next turn runs the inline batch
            worker.pool.shutdown(wait=False)
            written.append((re.sub(rb"date: [^\r]*\r\n", b"", b"".join(transport.written)), transport.closed))
        return written

    plain, closing, again = asyncio.run(go())
    assert b"connection: close" not in plain[0] and not plain[1]
    assert b"connection: close\r\n" in closing[0] and closing[1]
    assert again == plain


def test_chains_and_pool_routes_run_straight_from_the_connection() -> None:
    """Executor.prepare puts a chain that cannot suspend in `straight` with its chain, a bare
    `def` route with its pool hand-off, and an `async def` one with plain parameters with its
    PlainInvoke: the connection runs them without Executor.start, and answers as start would."""
    async def go() -> tuple[list[str], bytes, dict[str, typing.Any]]:
        worker = Worker(make_app(), Config(loop_block_threshold=0), [])
        worker.build(asyncio.get_running_loop())
        worker._tick()
        executor = worker.executor
        started: list[str] = []
        start = executor.start

        def counted(exchange: typing.Any) -> None:
            started.append(exchange.request.path)
            start(exchange)

        executor.start = counted  # type: ignore[method-assign]
        transport = Transport()
        protocol = HttpProtocol(worker)
        protocol.connection_made(transport)  # type: ignore[arg-type]
        # One at a time: a request pipelined behind another goes the Python way.
        for answered, path in enumerate(("/chained/json", "/sync", "/items/4?q=2"), 1):
            protocol.data_received(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path.encode())
            for _ in range(200):
                if b"".join(transport.written).count(b"HTTP/1.1 ") >= answered:
                    break
                await asyncio.sleep(0.005)
        worker.pool.shutdown(wait=False)
        return started, b"".join(transport.written), {route.path: how for route, how in executor.straight.items()}

    started, written, straight = asyncio.run(go())
    assert callable(straight["/chained/json"])  # the chain's run_inline, not a bare handler's pass_request
    assert type(straight["/sync"]) is tuple  # the pool hand-off's parts
    assert type(straight["/items/{item_id}"]).__name__ == "PlainInvoke"  # bound and called in C
    assert started == []
    assert b"x-after: 1\r\n" in written and b'{"inline":true}' in written and b'{"ran":"pool"}' in written
    assert b'{"item_id":4,"q":2}' in written
