"""--inline-batch (ext/batch.c): the inline requests of one loop turn are answered together,
every handler first, then every write; a real server answers the same with it on and off."""
from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import typing

import httpx
import pytest

from catzilla import Catzilla, Request
from catzilla.config import Config
from catzilla.worker.protocol import HttpProtocol
from catzilla.worker.server import Worker

from test_connection_native import Transport

GET = b"GET /json HTTP/1.1\r\nHost: a\r\n\r\n"


def worker_with(app: Catzilla, **settings: typing.Any) -> Worker:
    worker = Worker(app, Config(loop_block_threshold=0, **settings), [])
    worker.build(asyncio.get_running_loop())
    worker._tick()
    return worker


def connect(worker: Worker, transport: typing.Any) -> HttpProtocol:
    protocol = HttpProtocol(worker)
    protocol.connection_made(transport)
    return protocol


def test_a_turn_s_requests_run_every_handler_then_every_write() -> None:
    transports = [Transport(), Transport(), Transport()]
    seen: list[int] = []  # responses written when each handler ran
    app = Catzilla()

    @app.get("/json")
    async def json(request: Request) -> dict[str, int]:
        seen.append(sum(len(t.written) for t in transports))
        return {"n": len(seen)}

    async def go() -> None:
        worker = worker_with(app)
        batch = worker.executor.batch
        assert batch is not None
        for transport in transports:
            connect(worker, transport).data_received(GET)
        assert batch.waiting() == 3 and not any(t.written for t in transports)  # deferred
        await asyncio.sleep(0)  # the loop's next turn
        assert batch.runs == 1 and batch.waiting() == 0
        assert seen == [0, 0, 0]  # every handler ran before the first write
        assert [t.written[0].endswith(b'{"n":%d}' % n) for n, t in enumerate(transports, 1)] == [True] * 3
        worker.pool.shutdown(wait=False)

    asyncio.run(go())


def test_a_def_route_s_jobs_are_handed_to_the_pool_with_the_turn_s_others() -> None:
    transports = [Transport(), Transport()]
    app = Catzilla()

    @app.get("/sync")
    def in_pool(request: Request) -> dict[str, str]:
        return {"ran": "pool"}

    async def go() -> None:
        worker = worker_with(app)
        batch = worker.executor.batch
        assert batch is not None
        for transport in transports:
            connect(worker, transport).data_received(b"GET /sync HTTP/1.1\r\nHost: a\r\n\r\n")
        assert batch.waiting() == 2 and worker.pool.pending == 0  # not yet on the pool's queue
        await asyncio.sleep(0)
        assert batch.runs == 1 and worker.pool.pending + worker.pool.completed == 2
        for _ in range(200):
            if all(t.written for t in transports):
                break
            await asyncio.sleep(0.005)
        assert all(t.written[0].endswith(b'{"ran":"pool"}') for t in transports)
        worker.pool.shutdown(wait=False)

    asyncio.run(go())


def test_off_each_request_is_answered_as_it_is_parsed() -> None:
    app = Catzilla()

    @app.get("/json")
    async def json(request: Request) -> dict[str, bool]:
        return {"ok": True}

    async def go() -> None:
        worker = worker_with(app, inline_batch=False)
        assert worker.executor.batch is None
        transport = Transport()
        connect(worker, transport).data_received(GET)
        assert transport.written and transport.written[0].startswith(b"HTTP/1.1 200 OK")
        worker.pool.shutdown(wait=False)

    asyncio.run(go())


class Unwritable(Transport):
    aborted = False

    def write(self, data: bytes) -> None:
        raise OSError("the socket is gone")

    def abort(self) -> None:
        self.aborted = self.closed = True


def test_an_error_out_of_the_batch_closes_that_connection_and_answers_the_rest() -> None:
    app = Catzilla()

    @app.get("/json")
    async def json(request: Request) -> dict[str, bool]:
        return {"ok": True}

    async def go() -> tuple[list[dict[str, typing.Any]], Unwritable, Transport]:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, typing.Any]] = []
        loop.set_exception_handler(lambda loop, context: reported.append(context))
        worker = worker_with(app)
        broken, fine = Unwritable(), Transport()
        connect(worker, broken).data_received(GET)
        connect(worker, fine).data_received(GET)
        await asyncio.sleep(0)
        worker.pool.shutdown(wait=False)
        return reported, broken, fine

    reported, broken, fine = asyncio.run(go())
    assert broken.aborted
    assert [type(context["exception"]) for context in reported] == [OSError]
    assert "batched" in reported[0]["message"]
    assert fine.written and fine.written[0].startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize("flag", ["--inline-batch", "--no-inline-batch"])
def test_a_server_answers_many_connections_at_once(serve: typing.Any, flag: str) -> None:
    server = serve("batch_app:app", flag)

    def client(n: int) -> list[tuple[int, typing.Any]]:
        with httpx.Client(base_url=server.url) as http:
            return [(r.status_code, r.json()) for r in (http.get("/count", params={"n": f"{n}.{i}"})
                                                        for i in range(20))]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = [answer for answers in pool.map(client, range(16)) for answer in answers]
    assert len(answers) == 320 and all(status == 200 for status, _ in answers)
    assert sorted(body["n"] for _, body in answers) == sorted(f"{n}.{i}" for n in range(16) for i in range(20))
    with httpx.Client(base_url=server.url) as http:
        failed = http.get("/fail")
        assert failed.status_code == 500 and failed.json() == {"detail": "Internal Server Error"}
        assert http.get("/ran").json() == {"ran": 320}
        assert http.get("/sync").json() == {"ran": "pool"}


@pytest.mark.parametrize("flag", ["--inline-batch", "--no-inline-batch"])
def test_a_request_pipelined_after_close_is_not_run(serve: typing.Any, flag: str) -> None:
    """RFC 9112 9.6: once a response says `close` (here the server's: --keep-alive-timeout 0;
    after a client's own `Connection: close` the parser takes nothing more), no further
    request is processed."""
    server = serve("batch_app:app", flag, "--keep-alive-timeout", "0")
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET /count?n=first HTTP/1.1\r\nHost: a\r\n\r\n"
                     b"GET /count?n=second HTTP/1.1\r\nHost: a\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 200") == 1 and b'"n":"first"' in received
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/ran").json() == {"ran": 1}


@pytest.mark.parametrize("flag", ["--inline-batch", "--no-inline-batch"])
def test_what_a_handler_sets_in_its_context_stays_with_its_request(serve: typing.Any, flag: str) -> None:
    """As under uvicorn, where each request runs in a Task of its own: a ContextVar set by
    one request is not seen by the next, on the same connection or another, in one loop
    turn's batch or not."""
    server = serve("batch_app:app", flag)

    def client(n: int) -> list[typing.Any]:
        with httpx.Client(base_url=server.url) as http:
            return [http.get(path).json()["before"]
                    for i in range(10) for path in (f"/context?n={n}.{i}", f"/context/{i}")]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        seen = [before for answers in pool.map(client, range(8)) for before in answers]
    assert len(seen) == 160 and set(seen) == {None}
