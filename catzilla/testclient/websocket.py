"""`websocket_connect` of the test clients: Starlette's session API over the real WebSocket
machinery, in memory. The handshake goes into a worker's HttpProtocol as the bytes a client
sends; the protocol hands the transport over to catzilla.worker.websocket's connection; the
`websockets` library's sans-I/O client reads what the server writes and frames what the
test sends, as a real client would."""
from __future__ import annotations

import asyncio
import collections
import contextvars
import json
import typing

import httpx
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response as HandshakeResponse
from websockets.protocol import OPEN, SEND_EOF
from websockets.uri import parse_uri

from ..websockets import WebSocketDisconnect
from ..worker.protocol import HttpProtocol
from .memory import PeerTransport, encode_request, errors_caught

if typing.TYPE_CHECKING:
    from . import AsyncCatzillaTransport, CatzillaTransport, _Server

__all__ = ["WebSocketTestSession", "AsyncWebSocketTestSession", "WebSocketDenialResponse"]

# Seconds the close handshake, then the WebSocket handler, have once the session is left;
# a handler still running then (it waits on something other than the client) is cancelled,
# as Starlette's test client cancels it.
WEBSOCKET_EXIT_GRACE = 1.0


class _WebSocketChannel(PeerTransport):
    """The client's end of one WebSocket connection into the worker, in memory. The
    handshake goes in as HTTP/1.1 bytes to an HttpProtocol, which hands the transport over
    to the real WebSocketConnection (`set_protocol`); what the server writes is read by the
    `websockets` library's sans-I/O client (the 101, then frames, answering pings and the
    close handshake), which also frames (masks) what the test sends. Everything runs on the
    worker's loop; the sessions below are the test's side."""

    def __init__(self, server: "_Server", request: httpx.Request, subprotocols: typing.Sequence[str]) -> None:
        super().__init__(server.client)
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.ws = ClientProtocol(parse_uri("ws://testserver/"), subprotocols=list(subprotocols) or None,
                                 max_size=None)
        request.headers["upgrade"] = "websocket"
        request.headers["connection"] = "Upgrade"
        request.headers["sec-websocket-key"] = self.ws.key
        request.headers["sec-websocket-version"] = "13"
        if subprotocols:
            request.headers["sec-websocket-protocol"] = ", ".join(subprotocols)
        self.request = request
        self.protocol: asyncio.Protocol = HttpProtocol(server.worker)
        self.handshake: HandshakeResponse | None = None
        self.messages: collections.deque[dict[str, typing.Any]] = collections.deque()
        self.fragments: list[bytes] = []  # a message arriving in pieces
        self.text = False  # ... of text
        self.closing: dict[str, typing.Any] | None = None  # the close message, once closed
        self.changed: asyncio.Future[None] | None = None  # a waiter for the next event
        self.inbound = bytearray()  # the client's bytes, waiting for the server to read them
        self.reading = True
        self.caught: list[BaseException] = []
        self.context = contextvars.copy_context()
        self.context.run(errors_caught.set, self.caught)

    # -- the test's operations (on the loop) -------------------------------------------------

    async def connect(self) -> "_WebSocketChannel":
        self.context.run(self.protocol.connection_made, self)
        self.context.run(self.protocol.data_received, encode_request(self.request))
        await self._wait(lambda: self.handshake is not None or self.closed, "the handshake's answer")
        response = self.handshake
        if response is not None and response.status_code == 101 and self.ws.handshake_exc is None:
            return self
        self._lose()
        if self.caught and self.server.raise_server_exceptions:
            raise self.caught.pop(0)
        refusal = getattr(self.protocol, "refusal", None)
        if refusal is not None:  # the handler closed before accept() (a 403 on the wire)
            raise WebSocketDisconnect(*refusal)
        if response is None:
            raise WebSocketDisconnect(1006, "the server closed the connection during the handshake")
        raise WebSocketDenialResponse(response.status_code, headers=list(response.headers.raw_items()),
                                      content=bytes(response.body or b""))

    async def send(self, message: typing.Mapping[str, typing.Any]) -> None:
        """ASGI's message from the client's side: websocket.receive or websocket.disconnect."""
        if self.ws.state is not OPEN:
            return  # closed: dropped, as Starlette's test client drops it
        if message["type"] == "websocket.disconnect":
            self.ws.send_close(message.get("code", 1000), message.get("reason") or "")
        elif message.get("text") is not None:
            self.ws.send_text(message["text"].encode("utf-8"))
        else:
            self.ws.send_binary(message["bytes"])
        self._to_server()

    async def receive(self) -> dict[str, typing.Any]:
        """The next message the server sent (websocket.send), or websocket.close once closed."""
        await self._wait(lambda: self.messages or self.closing is not None, "a message from the WebSocket")
        if self.messages:
            return self.messages.popleft()
        if self.caught and self.server.raise_server_exceptions:
            raise self.caught.pop(0)
        return dict(self.closing)  # type: ignore[arg-type]

    async def finish(self, raise_errors: bool) -> None:
        """Leaving the session: close with 1000 if still open and let the close handshake
        end (a server that stopped reading, its queue full, is left as a client that goes
        away is: 1006), then give the handler a moment to return; one still running is
        cancelled (as Starlette's test client cancels it)."""
        await self.send({"type": "websocket.disconnect", "code": 1000})
        try:
            await self._wait(lambda: self.closed, "the close handshake", WEBSOCKET_EXIT_GRACE)
        except TimeoutError:
            pass
        finally:
            self._lose()
            task = getattr(self.protocol, "task", None)
            if task is not None and not task.done():
                await asyncio.wait([task], timeout=WEBSOCKET_EXIT_GRACE)
                task.cancel()
                await asyncio.wait([task])
        if raise_errors and self.caught and self.server.raise_server_exceptions:
            raise self.caught.pop(0)

    async def _wait(self, ready: typing.Callable[[], typing.Any], what: str, timeout: float | None = None) -> None:
        timeout = self.server.timeout if timeout is None else timeout
        deadline = self.loop.time() + timeout
        while not ready():
            self.changed = self.loop.create_future()
            try:
                await asyncio.wait_for(self.changed, max(0.0, deadline - self.loop.time()))
            except asyncio.TimeoutError:
                raise TimeoutError(f"no {what} within {timeout} s "
                                   f"({self.request.url.path})") from None

    def _changed(self) -> None:
        if self.changed is not None and not self.changed.done():
            self.changed.set_result(None)

    # -- bytes both ways ---------------------------------------------------------------------

    def _to_server(self) -> None:
        for data in self.ws.data_to_send():
            if data == SEND_EOF:  # the client's side is done (after a failed close handshake)
                self.loop.call_soon(self._lose)
                break
            self.inbound += data
        if self.inbound and self.reading:
            self.loop.call_soon(self._deliver)  # never inside the server's own write

    def _deliver(self) -> None:
        if self.inbound and self.reading and not self.closed:
            data, self.inbound = bytes(self.inbound), bytearray()
            self.context.run(self.protocol.data_received, data)

    def _lose(self) -> None:
        """The connection ends (the server closed it, or the test is done with it)."""
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.context.run, self.protocol.connection_lost, None)
        if self.closing is None:
            self.ws.receive_eof()
            self._closing()
        self._changed()

    def _closing(self) -> None:
        """The close message the test receives: the server's code, else 1006 (no close frame)."""
        close = self.ws.close_rcvd
        self.closing = {"type": "websocket.close", "code": int(close.code) if close is not None else 1006,
                        "reason": close.reason if close is not None else ""}

    def _frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self.text = frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CLOSE:
            self._closing()
            return
        elif frame.opcode is not Opcode.CONT:
            return  # ping (the library answers it) and pong
        self.fragments.append(bytes(frame.data))
        if frame.fin:
            data, self.fragments = b"".join(self.fragments), []
            self.messages.append({"type": "websocket.send", "text": data.decode("utf-8")} if self.text
                                 else {"type": "websocket.send", "bytes": data})

    # -- asyncio.Transport, as the server's protocols use it ---------------------------------

    def write(self, data: bytes) -> None:  # type: ignore[override]
        if self.closed:
            return
        self.ws.receive_data(bytes(data))
        for event in self.ws.events_received():
            if isinstance(event, HandshakeResponse):
                self.handshake = event
            else:
                self._frame(event)
        self._to_server()
        self._changed()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = typing.cast(asyncio.Protocol, protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def close(self) -> None:
        self._lose()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True
        if self.inbound:
            self.loop.call_soon(self._deliver)


class WebSocketDenialResponse(httpx.Response, WebSocketDisconnect):  # type: ignore[misc]
    """Starlette's: the handshake was answered with an HTTP response instead of the 101 (a
    denial response, or the path serves no WebSocket); a WebSocketDisconnect that is also
    the response."""

    def __init__(self, status_code: int, **kwargs: typing.Any) -> None:
        httpx.Response.__init__(self, status_code, **kwargs)
        WebSocketDisconnect.__init__(self, 1000, f"HTTP {status_code} instead of 101")


def _accept_headers(response: HandshakeResponse) -> list[tuple[bytes, bytes]]:
    """The headers the handler put on its 101 (accept(headers=...))."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.raw_items()
            if name.lower() not in _HANDSHAKE_HEADERS]


_HANDSHAKE_HEADERS = {"upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol",
                      "sec-websocket-extensions", "server", "date"}


class _Session:
    """What both sessions share: the connection's state seen from the test."""

    channel: _WebSocketChannel

    def _opened(self, channel: _WebSocketChannel) -> None:
        self.channel = channel
        response = channel.handshake
        assert response is not None
        self.accepted_subprotocol: str | None = channel.ws.subprotocol
        self.extra_headers: list[tuple[bytes, bytes]] = _accept_headers(response)

    @staticmethod
    def _text(message: typing.Mapping[str, typing.Any]) -> str:
        _raise_on_close(message)
        return typing.cast(str, message["text"])

    @staticmethod
    def _bytes(message: typing.Mapping[str, typing.Any]) -> bytes:
        _raise_on_close(message)
        return typing.cast(bytes, message["bytes"])

    @staticmethod
    def _json(message: typing.Mapping[str, typing.Any], mode: str) -> typing.Any:
        _raise_on_close(message)
        return json.loads(message["text"] if mode == "text" else message["bytes"])


def _raise_on_close(message: typing.Mapping[str, typing.Any]) -> None:
    if message["type"] == "websocket.close":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason", ""))


def _receive_message(data: typing.Any, kind: str) -> dict[str, typing.Any]:
    if kind == "json":
        return {"type": "websocket.receive", "text": json.dumps(data, separators=(",", ":"), ensure_ascii=False)}
    if kind == "json-binary":
        return {"type": "websocket.receive",
                "bytes": json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")}
    return {"type": "websocket.receive", kind: data}


class WebSocketTestSession(_Session):
    """Starlette's: `with client.websocket_connect("/ws") as websocket:` connects (the
    handler's accept() answers), and leaving closes with 1000. A close or refusal before
    accept raises WebSocketDisconnect (WebSocketDenialResponse for an HTTP answer); a
    receive_*() once the server closed raises it with the close code."""

    __test__ = False

    def __init__(self, transport: "CatzillaTransport", request: httpx.Request,
                 subprotocols: typing.Sequence[str]) -> None:
        self.transport = transport
        self.request = request
        self.subprotocols = subprotocols

    def __enter__(self) -> "WebSocketTestSession":
        transport = self.transport
        if transport.loop is None:  # a client used without `with`: no lifespan
            transport.start(lifespan=False)
        self._opened(transport.call(self._connect()))
        return self

    async def _connect(self) -> _WebSocketChannel:
        server = self.transport.server
        assert server.worker is not None
        return await _WebSocketChannel(server, self.request, self.subprotocols).connect()

    def __exit__(self, kind: typing.Any, *args: typing.Any) -> None:
        self.transport.call(self.channel.finish(raise_errors=kind is None))

    def send(self, message: typing.Mapping[str, typing.Any]) -> None:
        self.transport.call(self.channel.send(message))

    def send_text(self, data: str) -> None:
        self.send(_receive_message(data, "text"))

    def send_bytes(self, data: bytes) -> None:
        self.send(_receive_message(data, "bytes"))

    def send_json(self, data: typing.Any, mode: str = "text") -> None:
        self.send(_receive_message(data, "json" if mode == "text" else "json-binary"))

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.send({"type": "websocket.disconnect", "code": code, "reason": reason})

    def receive(self) -> dict[str, typing.Any]:
        return typing.cast("dict[str, typing.Any]", self.transport.call(self.channel.receive()))

    def receive_text(self) -> str:
        return self._text(self.receive())

    def receive_bytes(self) -> bytes:
        return self._bytes(self.receive())

    def receive_json(self, mode: str = "text") -> typing.Any:
        return self._json(self.receive(), mode)


class AsyncWebSocketTestSession(_Session):
    """The same for AsyncTestClient: `async with client.websocket_connect("/ws") as
    websocket:` and `await websocket.receive_text()`."""

    __test__ = False

    def __init__(self, transport: "AsyncCatzillaTransport", request: httpx.Request,
                 subprotocols: typing.Sequence[str]) -> None:
        self.transport = transport
        self.request = request
        self.subprotocols = subprotocols

    async def __aenter__(self) -> "AsyncWebSocketTestSession":
        server = self.transport.server
        if server.worker is None:
            await server.start(lifespan=False)
        self._opened(await _WebSocketChannel(server, self.request, self.subprotocols).connect())
        return self

    async def __aexit__(self, kind: typing.Any, *args: typing.Any) -> None:
        await self.channel.finish(raise_errors=kind is None)

    async def send(self, message: typing.Mapping[str, typing.Any]) -> None:
        await self.channel.send(message)

    async def send_text(self, data: str) -> None:
        await self.send(_receive_message(data, "text"))

    async def send_bytes(self, data: bytes) -> None:
        await self.send(_receive_message(data, "bytes"))

    async def send_json(self, data: typing.Any, mode: str = "text") -> None:
        await self.send(_receive_message(data, "json" if mode == "text" else "json-binary"))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self.send({"type": "websocket.disconnect", "code": code, "reason": reason})

    async def receive(self) -> dict[str, typing.Any]:
        return await self.channel.receive()

    async def receive_text(self) -> str:
        return self._text(await self.receive())

    async def receive_bytes(self) -> bytes:
        return self._bytes(await self.receive())

    async def receive_json(self, mode: str = "text") -> typing.Any:
        return self._json(await self.receive(), mode)
