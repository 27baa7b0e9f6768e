"""TestClient.websocket_connect: Starlette's session API over our real WebSocket machinery
(HttpProtocol's upgrade, catzilla.worker.websocket and the `websockets` sans-I/O protocol),
in memory."""
from __future__ import annotations

import asyncio
import time

import pytest

from catzilla import Catzilla, Depends, HTTPException
from catzilla.config import Config
from catzilla.testclient import AsyncTestClient, TestClient, WebSocketDenialResponse
from catzilla.websockets import WebSocket, WebSocketDisconnect, WebSocketException


def make_app(seen: list) -> Catzilla:
    app = Catzilla()
    app.on_startup(lambda: seen.append("startup"))

    @app.websocket("/echo")
    async def echo(websocket: WebSocket):
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text.upper())

    @app.websocket("/bytes")
    async def bytes_echo(websocket: WebSocket):
        await websocket.accept()
        async for data in websocket.iter_bytes():
            await websocket.send_bytes(data[::-1])

    @app.websocket("/json")
    async def json_echo(websocket: WebSocket):
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"text": data})
        data = await websocket.receive_json(mode="binary")
        await websocket.send_json({"binary": data}, mode="binary")

    @app.websocket("/rooms/{room}")
    async def room(websocket: WebSocket, room: str, n: int = 1):
        await websocket.accept(subprotocol="chat" if "chat" in websocket.subprotocols else None,
                               headers=[(b"x-room", room.encode())])
        await websocket.send_json({"room": room, "n": n, "token": websocket.headers.get("x-token"),
                                   "cookie": websocket.cookies.get("session"), "scheme": websocket.url.scheme})
        await websocket.close(4001, "bye")

    @app.websocket("/refuse")
    async def refuse(websocket: WebSocket):
        await websocket.close(4003)

    def user(token: str = "") -> str:
        if token != "good":
            raise HTTPException(401, "bad token")
        return "ann"

    @app.websocket("/deps")
    async def deps(websocket: WebSocket, name: str = Depends(user)):
        await websocket.accept()
        await websocket.send_text(name)
        if await websocket.receive_text() == "policy":
            raise WebSocketException(1008, "not allowed")

    @app.websocket("/crash")
    async def crash(websocket: WebSocket):
        await websocket.accept()
        await websocket.receive_text()
        raise RuntimeError("handler failed")

    @app.websocket("/crash-before-accept")
    async def crash_early(websocket: WebSocket):
        raise LookupError("failed before accept")

    @app.websocket("/watch")
    async def watch(websocket: WebSocket):
        await websocket.accept()
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append(("closed", exc.code, exc.reason))

    @app.websocket("/stubborn")
    async def stubborn(websocket: WebSocket):
        await websocket.accept()
        try:
            await asyncio.sleep(3600)  # never reads: only the client's exit can end it
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    @app.websocket("/never-accepts")
    async def never_accepts(websocket: WebSocket):
        await asyncio.sleep(3600)

    @app.get("/plain")
    async def plain(request):
        return {"plain": True}

    return app


@pytest.fixture
def seen() -> list:
    return []


@pytest.fixture
def client(seen):
    with TestClient(make_app(seen)) as client:
        yield client


def test_text_bytes_and_json_both_ways(client):
    with client.websocket_connect("/echo") as websocket:
        websocket.send_text("hello")
        assert websocket.receive_text() == "HELLO"
        websocket.send_text("ü" * 50_000)  # a large message, and not ASCII
        assert websocket.receive_text() == "Ü" * 50_000
    with client.websocket_connect("/bytes") as websocket:
        websocket.send_bytes(b"\x00\x01\x02")
        assert websocket.receive_bytes() == b"\x02\x01\x00"
        websocket.send({"type": "websocket.receive", "bytes": b"ab"})  # ASGI's message, as Starlette's
        assert websocket.receive() == {"type": "websocket.send", "bytes": b"ba"}
    with client.websocket_connect("/json") as websocket:
        websocket.send_json({"a": [1, "ü"]})
        assert websocket.receive_json() == {"text": {"a": [1, "ü"]}}
        websocket.send_json([2], mode="binary")
        assert websocket.receive_json(mode="binary") == {"binary": [2]}


def test_parameters_headers_cookies_subprotocol_and_a_close_code(client):
    client.cookies.set("session", "s1")
    with client.websocket_connect("/rooms/blue?n=3", subprotocols=["x", "chat"],
                                  headers={"x-token": "t"}) as websocket:
        assert websocket.accepted_subprotocol == "chat"
        assert websocket.extra_headers == [(b"x-room", b"blue")]
        assert websocket.receive_json() == {"room": "blue", "n": 3, "token": "t", "cookie": "s1", "scheme": "ws"}
        with pytest.raises(WebSocketDisconnect) as closed:
            websocket.receive_text()
        assert (closed.value.code, closed.value.reason) == (4001, "bye")
        with pytest.raises(WebSocketDisconnect):  # and again: it stays closed
            websocket.receive_json()
    with client.websocket_connect("/rooms/red", params={"n": "9"}) as websocket:
        assert websocket.accepted_subprotocol is None
        assert websocket.receive_json()["n"] == 9


def test_refusals_raise_websocket_disconnect_as_starlettes_client_does(client):
    with pytest.raises(WebSocketDisconnect) as refused:  # close() before accept(): a 403 on the wire
        with client.websocket_connect("/refuse"):
            pass
    assert refused.value.code == 4003 and not isinstance(refused.value, WebSocketDenialResponse)
    with pytest.raises(WebSocketDisconnect) as invalid:  # an invalid parameter: 1008, as FastAPI's
        with client.websocket_connect("/rooms/blue?n=x"):
            pass
    assert invalid.value.code == 1008
    with pytest.raises(WebSocketDenialResponse) as denied:  # HTTPException from a dependency
        with client.websocket_connect("/deps?token=bad"):
            pass
    assert denied.value.status_code == 401 and denied.value.text == "bad token\n"
    assert isinstance(denied.value, WebSocketDisconnect)
    with pytest.raises(WebSocketDenialResponse) as missing:  # no WebSocket route: plain HTTP
        with client.websocket_connect("/plain"):
            pass
    assert missing.value.status_code == 200 and missing.value.json() == {"plain": True}
    with client.websocket_connect("/deps?token=good") as websocket:  # the dependency passes
        assert websocket.receive_text() == "ann"
        websocket.send_text("policy")
        with pytest.raises(WebSocketDisconnect) as policy:
            websocket.receive_text()
        assert (policy.value.code, policy.value.reason) == (1008, "not allowed")
    assert client.get("/plain").json() == {"plain": True}  # the client still serves HTTP


def test_a_handlers_exception_is_raised_in_the_test(seen):
    with TestClient(make_app(seen)) as client:
        with pytest.raises(RuntimeError, match="handler failed"):
            with client.websocket_connect("/crash") as websocket:
                websocket.send_text("go")
                websocket.receive_text()
        with pytest.raises(LookupError, match="failed before accept"):
            with client.websocket_connect("/crash-before-accept"):
                pass
    with TestClient(make_app(seen), raise_server_exceptions=False) as client:
        with client.websocket_connect("/crash") as websocket:
            websocket.send_text("go")
            with pytest.raises(WebSocketDisconnect) as closed:
                websocket.receive_text()
            assert closed.value.code == 1011
        with pytest.raises(WebSocketDenialResponse) as refused:
            with client.websocket_connect("/crash-before-accept"):
                pass
        assert refused.value.status_code == 500


def test_the_client_closes_with_a_code_and_leaving_closes_with_1000(client, seen):
    with client.websocket_connect("/watch") as websocket:
        websocket.send_text("x")
        websocket.close(4321, "done here")
    with client.websocket_connect("/watch") as websocket:
        websocket.send_text("y")
    assert seen == ["startup", ("closed", 4321, "done here"), ("closed", 1000, "")]


def test_a_handler_that_ignores_the_close_is_cancelled_on_exit(client, seen):
    started = time.monotonic()
    with client.websocket_connect("/stubborn"):
        pass
    assert seen.count("cancelled") == 1 and time.monotonic() - started < 10
    with client.websocket_connect("/stubborn") as websocket:
        for n in range(40):  # past --ws-max-queue: the server stops reading, our close waits
            websocket.send_text(str(n))
    assert seen.count("cancelled") == 2 and time.monotonic() - started < 15


def test_the_servers_limits_apply(seen):
    """The real WebSocket connection answers: --ws-max-size closes with 1009, and a handler
    that neither accepts nor refuses is answered 504 after --request-timeout."""
    with TestClient(make_app(seen), config=Config(access_log=False, loop_block_threshold=0, ws_max_size=1000,
                                                  request_timeout=1)) as client:
        with client.websocket_connect("/echo") as websocket:
            websocket.send_text("a" * 1000)
            assert websocket.receive_text() == "A" * 1000
            websocket.send_text("a" * 1001)
            with pytest.raises(WebSocketDisconnect) as too_big:
                websocket.receive_text()
            assert too_big.value.code == 1009
        with pytest.raises(WebSocketDenialResponse) as late:
            with client.websocket_connect("/never-accepts"):
                pass
        assert late.value.status_code == 504


def test_without_with_the_client_connects_and_no_lifespan_runs(seen):
    client = TestClient(make_app(seen))
    with client.websocket_connect("/echo") as websocket:
        websocket.send_text("a")
        assert websocket.receive_text() == "A"
    client.close()
    assert seen == []


def test_the_async_client_has_websocket_connect_too(seen):
    async def main() -> None:
        async with AsyncTestClient(make_app(seen)) as client:
            async with client.websocket_connect("/echo") as websocket:
                await websocket.send_text("async")
                assert await websocket.receive_text() == "ASYNC"
                await websocket.send_json("j")
                assert await websocket.receive_text() == '"J"'
            async with client.websocket_connect("/rooms/green") as websocket:
                assert (await websocket.receive_json())["room"] == "green"
                with pytest.raises(WebSocketDisconnect):
                    await websocket.receive_bytes()
            with pytest.raises(WebSocketDisconnect) as refused:
                async with client.websocket_connect("/refuse"):
                    pass
            assert refused.value.code == 4003
            with pytest.raises(RuntimeError, match="handler failed"):
                async with client.websocket_connect("/crash") as websocket:
                    await websocket.send_text("go")
                    await websocket.receive_text()
            assert (await client.get("/plain")).json() == {"plain": True}

    asyncio.run(main())
