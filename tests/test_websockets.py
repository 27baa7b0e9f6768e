"""WebSockets on a real server: the `websockets` client for what clients do, raw frames for
what hostile or broken peers do (Autobahn's cases: fragmentation, invalid UTF-8, bad close
codes, unmasked and reserved frames)."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import read_response, read_responses, run_server


@pytest.fixture(scope="module")
def server():
    with run_server("edge_app:app", "--ws-max-size", "4096") as server:
        yield server


def ws_url(server, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


# -- through the websockets client ------------------------------------------------------------

def test_echo_text_and_fragmented_message(server):
    async def go():
        async with websockets.connect(ws_url(server, "/ws/echo")) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(["frag", "men", "ted ", "é€😀"])  # one message in four frames
            assert await ws.recv() == "fragmented é€😀"
            await ws.send("x" * 4000)  # under --ws-max-size 4096
            assert await ws.recv() == "x" * 4000
    run(go())


def test_json_and_url(server):
    async def go():
        async with websockets.connect(ws_url(server, "/ws/json")) as ws:
            await ws.send(json.dumps({"a": [1, 2]}))
            answer = json.loads(await ws.recv())
        assert answer == {"got": {"a": [1, 2]}, "url": f"ws://{server.host}:{server.port}/ws/json"}
    run(go())


def test_binary(server):
    async def go():
        async with websockets.connect(ws_url(server, "/ws/bytes")) as ws:
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\xff\x01\x00"
    run(go())


def test_path_and_query_parameters_subprotocol_and_close_code(server):
    async def go():
        async with websockets.connect(ws_url(server, "/ws/rooms/blue?n=7"), subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            first = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        return first, closed.value.rcvd
    first, close = run(go())
    assert first["room"] == "blue" and first["n"] == 7 and first["path_params"] == {"room": "blue"}
    assert (close.code, close.reason) == (4001, "bye")


def test_router_route_and_a_missing_parameter_refused_before_the_handshake(server):
    async def go():
        async with websockets.connect(ws_url(server, "/r/ws?token=abc")) as ws:
            assert await ws.recv() == "token=abc"
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(ws_url(server, "/r/ws")):
                pass
        return refused.value.response.status_code
    assert run(go()) == 403  # FastAPI closes with 1008; before accept that is a 403


def test_close_before_accept_is_403_and_crash_after_is_1011(server):
    async def go():
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(ws_url(server, "/ws/refuse")):
                pass
        async with websockets.connect(ws_url(server, "/ws/crash")) as ws:
            await ws.send("x")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        return refused.value.response.status_code, closed.value.rcvd.code
    assert run(go()) == (403, 1011)
    assert "Exception in WebSocket handler for /ws/crash" in server.logs()


def test_oversize_message_closes_1009_and_the_server_goes_on(server):
    async def go():
        async with websockets.connect(ws_url(server, "/ws/echo"), max_size=None) as ws:
            await ws.send("y" * 5000)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        async with websockets.connect(ws_url(server, "/ws/echo")) as ws:
            await ws.send("still here")
            assert await ws.recv() == "still here"
        return closed.value.rcvd.code
    assert run(go()) == 1009


def test_oversize_fragmented_message_closes_1009(server):
    async def go():
        async with websockets.connect(ws_url(server, "/ws/echo")) as ws:
            await ws.send(["z" * 3000, "z" * 3000])
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        return closed.value.rcvd.code
    assert run(go()) == 1009


def test_the_handler_sees_the_clients_close_code(server):
    async def go():
        async with websockets.connect(ws_url(server, "/ws/wait")) as ws:
            await ws.close(4321, "done")
        async with websockets.connect(ws_url(server, "/ws/last-close")) as ws:
            return json.loads(await ws.recv())
    assert run(go()) == [4321]


def test_many_connections_at_once(server):
    async def one(i: int) -> str:
        async with websockets.connect(ws_url(server, "/ws/echo")) as ws:
            await ws.send(f"m{i}")
            return await ws.recv()

    async def go():
        return await asyncio.gather(*(one(i) for i in range(50)))
    assert run(go()) == [f"m{i}" for i in range(50)]


# -- plain HTTP stays plain -------------------------------------------------------------------

def handshake(path: str, host: str = "a") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def test_upgrade_to_an_http_route_is_answered_as_http_and_the_connection_stays_http(server):
    with server.connect() as sock:
        sock.sendall(handshake("/plain") + b"GET /where HTTP/1.1\r\nHost: a\r\n\r\n")
        (first, first_body), (second, second_body) = read_responses(sock, 2)
        assert first.startswith(b"HTTP/1.1 200 ") and json.loads(first_body) == {"plain": True, "upgrade": "websocket"}
        assert second.startswith(b"HTTP/1.1 200 ") and json.loads(second_body)["path"] == "/where"


def test_upgrade_to_no_route_is_404_and_http_routes_are_not_websockets(server):
    async def go():
        with pytest.raises(InvalidStatus) as missing:
            async with websockets.connect(ws_url(server, "/nowhere")):
                pass
        with pytest.raises(InvalidStatus) as plain:
            async with websockets.connect(ws_url(server, "/plain")):
                pass
        return missing.value.response.status_code, plain.value.response.status_code
    assert run(go()) == (404, 200)


def test_a_plain_get_to_a_websocket_path_is_404(server):
    with server.connect() as sock:
        sock.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock)[0] == 404


def test_an_invalid_handshake_is_refused_by_http(server):
    with server.connect() as sock:
        sock.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 400 and b"Sec-WebSocket-Key" in body


# -- raw frames: what broken and hostile peers send -------------------------------------------

def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawClient:
    def __init__(self, server, path: str = "/ws/echo") -> None:
        self.sock = server.connect(timeout=10)
        self.sock.sendall(handshake(path))
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(4096)
        head, _, self.buffer = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        first, second = self._read(2)
        assert not second & 0x80, "a server's frames are never masked"
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read(8))[0]
        return first & 0x0F, self._read(length)

    def close_code(self) -> int:
        opcode, payload = self.read_frame()
        while opcode != 0x8:
            opcode, payload = self.read_frame()
        return struct.unpack("!H", payload[:2])[0] if payload else 1005

    def closed(self) -> bool:
        self.sock.settimeout(5)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def test_raw_fragments_with_a_ping_between_them(server):
    client = RawClient(server)
    client.sock.sendall(frame(0x1, "é".encode()[:1], fin=False) + frame(0x9, b"p1")
                        + frame(0x0, "é".encode()[1:] + b"!", fin=True))
    assert client.read_frame() == (0xA, b"p1")  # the pong, between the fragments
    assert client.read_frame() == (0x1, "é!".encode())  # a character split across frames


@pytest.mark.parametrize("name, data, code", [
    ("invalid UTF-8 in a text message", frame(0x1, b"\xff\xfe"), 1007),
    ("invalid UTF-8 across fragments", frame(0x1, b"ok", fin=False) + frame(0x0, b"\xc3\x28"), 1007),
    ("an unmasked client frame", frame(0x1, b"hi", mask=False), 1002),
    ("a reserved opcode", frame(0x3, b""), 1002),
    ("a reserved bit without an extension", frame(0x1, b"hi", rsv=2), 1002),
    ("a continuation with nothing to continue", frame(0x0, b"x"), 1002),
    ("a new message inside a fragmented one", frame(0x1, b"a", fin=False) + frame(0x1, b"b"), 1002),
    ("a fragmented control frame", frame(0x9, b"a", fin=False), 1002),
    ("a control frame over 125 bytes", frame(0x9, b"a" * 126), 1002),
    ("close code 999", frame(0x8, struct.pack("!H", 999)), 1002),
    ("close code 1005 on the wire", frame(0x8, struct.pack("!H", 1005)), 1002),
    ("a close reason that is not UTF-8", frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),
])
def test_protocol_violations_close_with_the_rfc_code(server, name, data, code):
    client = RawClient(server)
    client.sock.sendall(data)
    assert client.close_code() == code, name
    assert client.closed()


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
def test_valid_close_codes_are_echoed(server, code):
    client = RawClient(server)
    client.sock.sendall(frame(0x8, struct.pack("!H", code) + b"bye"))
    assert client.close_code() == code
    assert client.closed()


def test_an_empty_close_is_answered_with_an_empty_close(server):
    client = RawClient(server)
    client.sock.sendall(frame(0x8, b""))
    assert client.read_frame() == (0x8, b"")
    assert client.closed()


# -- keep-alive, and the server going away ----------------------------------------------------

def test_ping_keepalive_keeps_a_live_peer_and_drops_a_silent_one():
    with run_server("edge_app:app", "--ws-ping-interval", "1", "--ws-ping-timeout", "1") as server:
        async def live():
            async with websockets.connect(ws_url(server, "/ws/echo"), ping_interval=None) as ws:
                await asyncio.sleep(3.5)  # idle: the server pings, the client's library pongs
                await ws.send("alive")
                return await ws.recv()
        assert run(live()) == "alive"
        silent = RawClient(server)  # never answers a ping
        started = time.monotonic()
        opcode, _ = silent.read_frame()
        assert opcode == 0x9
        assert silent.close_code() == 1011
        assert silent.closed()
        assert time.monotonic() - started < 6


def test_server_stop_closes_websockets_with_1001():
    with run_server("edge_app:app") as server:
        async def go():
            async with websockets.connect(ws_url(server, "/ws/wait")) as ws:
                await ws.send("hold")
                await asyncio.sleep(0.2)
                server.proc.send_signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                return closed.value.rcvd
        close = run(go())
        assert close is not None and close.code == 1001
        assert server.proc.wait(10) == 0


def test_websocket_endpoints_must_be_async():
    from catzilla import Catzilla

    app = Catzilla()
    with pytest.raises(TypeError, match="async def"):
        @app.websocket("/ws")
        def sync(websocket):
            pass


def test_a_handler_that_never_accepts_is_answered_504_after_the_request_timeout():
    with run_server("edge_app:app", "--request-timeout", "1") as server:
        async def go():
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(ws_url(server, "/ws/never-accepts"), open_timeout=10):
                    pass
            return refused.value.response.status_code
        started = time.monotonic()
        assert run(go()) == 504
        assert time.monotonic() - started < 4


def test_stop_cancels_a_handler_that_waits_on_something_else():
    with run_server("edge_app:app") as server:
        async def go():
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(ws_url(server, "/ws/never-accepts"), open_timeout=10):
                    pass
            return refused.value.response.status_code
        async def connect_then_stop():
            attempt = asyncio.ensure_future(go())
            await asyncio.sleep(0.5)
            server.proc.send_signal(signal.SIGTERM)
            return await attempt
        assert run(connect_then_stop()) == 503  # refused as the worker drains
        assert server.proc.wait(10) == 0
        assert "Task was destroyed" not in server.logs()


def test_a_flood_of_messages_comes_back_whole_and_in_order(server):
    async def go():
        async with websockets.connect(ws_url(server, "/ws/echo")) as ws:
            for i in range(2000):  # far past --ws-max-queue: reading pauses and resumes
                await ws.send(f"n{i}")
            return [await ws.recv() for _ in range(2000)]
    assert run(go()) == [f"n{i}" for i in range(2000)]


def test_permessage_deflate_is_offered_unless_turned_off(server):
    async def extensions(url):
        async with websockets.connect(url) as ws:
            await ws.send("a" * 1000)
            assert await ws.recv() == "a" * 1000
            return [type(e).__name__ for e in ws.protocol.extensions]
    assert run(extensions(ws_url(server, "/ws/echo"))) == ["PerMessageDeflate"]
    with run_server("edge_app:app", "--no-ws-per-message-deflate") as plain:
        assert run(extensions(ws_url(plain, "/ws/echo"))) == []


def test_dependencies_run_for_websockets_and_refuse_or_close(server):
    async def go():
        async with websockets.connect(ws_url(server, "/ws/deps?token=good")) as ws:
            first = json.loads(await ws.recv())
            await ws.send("fine")
        async with websockets.connect(ws_url(server, "/ws/deps?token=good")) as ws:
            second = json.loads(await ws.recv())
            await ws.send("policy")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(ws_url(server, "/ws/deps?token=bad")):
                pass
        return first, second, closed.value.rcvd, refused.value.response
    first, second, close, refused = run(go())
    assert first["user"] == "ann" and first["session"] == 7
    assert second["cleanups"] == first["cleanups"] + 1  # the generator's clean-up ran in between
    assert (close.code, close.reason) == (1008, "not allowed")
    assert refused.status_code == 401 and b"bad token" in refused.body


def test_the_same_websocket_routes_under_uvicorn():
    """The ASGI bridge runs WebSocket routes too (catzilla.websockets.run_endpoint)."""
    pytest.importorskip("uvicorn")
    from test_asgi import uvicorn_server

    with uvicorn_server("edge_app:app") as (url, _):
        base = url.replace("http://", "ws://")

        async def go():
            async with websockets.connect(base + "/ws/echo") as ws:
                await ws.send(["frag", "ment"])
                echoed = await ws.recv()
            async with websockets.connect(base + "/ws/rooms/green?n=2") as ws:
                room = json.loads(await ws.recv())
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
            async with websockets.connect(base + "/ws/deps?token=good") as ws:
                deps = json.loads(await ws.recv())
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(base + "/ws/deps?token=bad"):
                    pass
            with pytest.raises(InvalidStatus) as missing:
                async with websockets.connect(base + "/nowhere"):
                    pass
            return echoed, room, closed.value.rcvd.code, deps, refused.value.response.status_code, \
                missing.value.response.status_code
        echoed, room, code, deps, refused, missing = run(go())
    assert echoed == "fragment" and room["room"] == "green" and room["n"] == 2 and code == 4001
    assert deps["user"] == "ann" and refused == 401 and missing == 403
