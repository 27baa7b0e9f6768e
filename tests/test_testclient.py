"""TestClient: the real protocol, router, executor and pool, in memory, behind httpx."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager

import pytest

from catzilla import Catzilla, HTTPException, JSONResponse, StreamingResponse
from catzilla.background_tasks import schedule_task
from catzilla.testclient import AsyncTestClient, TestClient


def make_app(events: list[str]) -> Catzilla:
    @asynccontextmanager
    async def lifespan(app):
        events.append("lifespan enter")
        yield {"db": "connected"}
        events.append("lifespan exit")

    app = Catzilla(lifespan=lifespan)
    app.on_startup(lambda: events.append("startup"))
    app.on_shutdown(lambda: events.append("shutdown"))

    @app.get("/state")
    async def state(request):
        return {"db": request.state.db}

    @app.get("/sync")
    def sync(request):
        return {"thread": threading.current_thread().name}

    @app.get("/async")
    async def async_(request):
        await asyncio.sleep(0)
        return {"thread": threading.current_thread().name}

    @app.get("/items/{item_id}")
    async def item(request, item_id: int, q: int = 1):
        return {"item_id": item_id, "q": q}

    @app.post("/echo")
    async def echo(request):
        return JSONResponse({"body": request.json(), "type": request.headers.get("content-type")})

    @app.get("/boom")
    def boom(request):
        raise ZeroDivisionError("sync handler failed")

    @app.get("/aboom")
    async def aboom(request):
        await asyncio.sleep(0)
        raise LookupError("async handler failed")

    @app.get("/teapot")
    async def teapot(request):
        raise HTTPException(418, "short and stout")

    @app.get("/login")
    async def login(request):
        return JSONResponse({"ok": True}, headers={"set-cookie": "session=abc123; Path=/"})

    @app.get("/whoami")
    async def whoami(request):
        return {"session": request.cookies.get("session"), "client": request.client.host}

    @app.get("/stream")
    def stream(request):
        return StreamingResponse(iter(["a", "b", "c"]), media_type="text/plain")

    @app.get("/later")
    def later(request):
        schedule_task(events.append, "background ran")
        return "sent"

    return app


def test_lifespan_runs_on_enter_and_exit():
    events: list[str] = []
    app = make_app(events)
    with TestClient(app) as client:
        assert events == ["startup", "lifespan enter"]
        assert client.get("/state").json() == {"db": "connected"}
    assert events == ["startup", "lifespan enter", "lifespan exit", "shutdown"]


def test_sync_handlers_run_in_the_pool_and_async_ones_on_the_loop():
    with TestClient(make_app([])) as client:
        sync, async_ = client.get("/sync").json(), client.get("/async").json()
        assert sync["thread"].startswith("catzilla-pool")
        assert async_["thread"] == "catzilla-testclient"
        response = client.get("/items/7", params={"q": 3})
        assert response.status_code == 200 and response.json() == {"item_id": 7, "q": 3}
        assert response.headers["server"] == "catzilla"  # written by the real protocol
        bad = client.get("/items/seven")
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "item_id"]
        assert client.post("/echo", json={"a": [1, 2]}).json() == {"body": {"a": [1, 2]}, "type": "application/json"}
        assert client.get("/stream").text == "abc"
        assert client.head("/items/1").content == b""
        assert client.get("/nowhere").status_code == 404
        assert client.delete("/sync").status_code == 405


def test_server_exceptions_are_raised_in_the_test():
    with TestClient(make_app([])) as client:
        with pytest.raises(ZeroDivisionError, match="sync handler failed"):
            client.get("/boom")
        with pytest.raises(LookupError, match="async handler failed"):
            client.get("/aboom")
        assert client.get("/teapot").status_code == 418  # an answer, not a failure
        assert client.get("/sync").status_code == 200  # and the client goes on working


def test_server_exceptions_answer_500_when_not_raised():
    with TestClient(make_app([]), raise_server_exceptions=False) as client:
        response = client.get("/boom")
        assert response.status_code == 500 and response.json() == {"detail": "Internal Server Error"}


def test_cookies_persist_across_requests():
    with TestClient(make_app([])) as client:
        client.get("/login")
        assert client.cookies.get("session") == "abc123"
        assert client.get("/whoami").json() == {"session": "abc123", "client": "testclient"}
    with TestClient(make_app([]), cookies={"session": "given"}) as client:
        assert client.get("/whoami").json()["session"] == "given"


def test_background_tasks_have_run_when_the_response_is_returned():
    events: list[str] = []
    with TestClient(make_app(events)) as client:
        assert client.get("/later").text == "sent"
        assert "background ran" in events


def test_without_with_requests_work_and_no_lifespan_runs():
    events: list[str] = []
    client = TestClient(make_app(events))
    try:
        assert client.get("/items/2").json() == {"item_id": 2, "q": 1}
        assert events == []
    finally:
        client.close()


def test_async_test_client():
    events: list[str] = []

    async def main():
        async with AsyncTestClient(make_app(events)) as client:
            assert events == ["startup", "lifespan enter"]
            responses = await asyncio.gather(*(client.get(f"/items/{i}") for i in range(20)),
                                             client.get("/sync"), client.get("/async"))
            assert [r.json()["item_id"] for r in responses[:20]] == list(range(20))
            assert responses[20].json()["thread"].startswith("catzilla-pool")
            with pytest.raises(LookupError):
                await client.get("/aboom")
            await client.get("/login")
            assert (await client.get("/whoami")).json()["session"] == "abc123"
        assert events[-2:] == ["lifespan exit", "shutdown"]

    asyncio.run(main())


def test_a_body_larger_than_the_limit_is_refused_as_by_the_server():
    from catzilla.config import Config

    with TestClient(make_app([]), config=Config(max_body_size=100, access_log=False)) as client:
        assert client.post("/echo", content=b"x" * 1000).status_code == 413


def test_a_handler_that_never_answers_fails_the_test_instead_of_hanging_it():
    app = Catzilla()

    @app.get("/hang")
    async def hang(request):
        await asyncio.sleep(3600)

    @app.get("/ok")
    async def ok(request):
        return "ok"

    with TestClient(app, timeout=0.5) as client:
        with pytest.raises(TimeoutError, match="no response from the app within 0.5 s"):
            client.get("/hang")
        assert client.get("/ok").text == "ok"

    async def main():
        async with AsyncTestClient(app, timeout=0.5) as client:
            with pytest.raises(TimeoutError):
                await client.get("/hang")
            assert (await client.get("/ok")).text == "ok"

    asyncio.run(main())


def test_two_clients_at_once_each_raise_their_own_exceptions():
    with TestClient(make_app([])) as first:
        with TestClient(make_app([])) as second:
            with pytest.raises(ZeroDivisionError):
                second.get("/boom")
        with pytest.raises(ZeroDivisionError):  # the other client's exit left the catcher in place
            first.get("/boom")



def test_a_failing_startup_is_raised_on_enter():
    app = Catzilla()

    @app.on_startup
    def connect():
        raise ConnectionRefusedError("the database is down")

    with pytest.raises(ConnectionRefusedError, match="database is down"):
        with TestClient(app):
            pass

    async def main():
        with pytest.raises(ConnectionRefusedError):
            async with AsyncTestClient(app):
                pass

    asyncio.run(main())


def test_the_blocked_loop_detector_runs_when_a_config_asks_for_it(caplog):
    from catzilla.config import Config

    app = Catzilla()

    @app.get("/block")
    async def block(request):
        time.sleep(0.5)  # keeps the loop: what the detector is for
        return "done"

    with caplog.at_level(logging.WARNING, logger="catzilla"):
        with TestClient(app) as client:  # the default: no detector
            assert client.get("/block").text == "done"
        assert "blocked the event loop" not in caplog.text
        with TestClient(app, config=Config(access_log=False, loop_block_threshold=0.05)) as client:
            assert client.get("/block").text == "done"
    assert "async handler for GET /block has blocked the event loop" in caplog.text
    deadline = time.monotonic() + 5  # and it stops with the client
    while any(t.name == "catzilla-loop-monitor" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the detector outlived its client"
        time.sleep(0.02)
