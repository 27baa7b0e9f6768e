"""WebSockets for handlers: Starlette's `WebSocket`, `WebSocketDisconnect` and `WebSocketState`.

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str, token: str | None = None):
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(f"{room}: {text}")

A WebSocket is a Request (headers, query_params, path_params, cookies, client, url, state,
app) that also talks: it speaks ASGI's websocket messages through the `receive` and `send`
it is given, so the same object works on our server (catzilla.worker.websocket), under an
ASGI server, or in a test client. Nothing here touches a socket.
"""
from __future__ import annotations

import enum
import logging
import typing

import orjson

from .errors import HTTPException, RequestValidationError
from .request import Request

__all__ = ["WebSocket", "WebSocketDisconnect", "WebSocketException", "WebSocketState", "WebSocketClose",
           "run_endpoint"]

logger = logging.getLogger("catzilla")

Message = typing.MutableMapping[str, typing.Any]
Receive = typing.Callable[[], typing.Awaitable[Message]]
Send = typing.Callable[[Message], typing.Awaitable[None]]


class WebSocketState(enum.Enum):
    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


class WebSocketDisconnect(Exception):
    """The peer closed (or the connection ended): `code` is the close code (1000 normal,
    1001 going away, 1006 ended without a close frame, ...)."""

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""
        super().__init__(code, self.reason)


class WebSocketException(Exception):
    """Raise in a WebSocket handler (or its dependencies) to close with `code` (Starlette's
    and FastAPI's); before accept() the handshake is refused (403)."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""
        super().__init__(code, self.reason)


class WebSocket(Request):
    __slots__ = ("_receive", "_send", "client_state", "application_state", "http_denial")

    @classmethod
    def from_request(cls, request: Request, receive: Receive, send: Send,
                     http_denial: bool = False) -> "WebSocket":
        """The handshake request, made a WebSocket that talks through receive/send.
        `http_denial`: the server takes ASGI's websocket.http.response messages (a refusal
        with any HTTP status, not only 403)."""
        socket = cls(request.method, request.path, request.query_string, request._header_items,
                     b"", request.client, request.http_version, request._header_map)
        socket.path_params = request.path_params
        socket.scheme = "wss" if request.scheme in ("https", "wss") else "ws"
        socket._receive, socket._send = receive, send
        socket.client_state = socket.application_state = WebSocketState.CONNECTING
        socket.http_denial = http_denial
        return socket

    # -- ASGI messages -----------------------------------------------------------------------

    async def receive(self) -> Message:
        if self.client_state is WebSocketState.DISCONNECTED:
            raise RuntimeError('cannot call "receive" once a disconnect message has been received')
        message = await self._receive()
        kind = message["type"]
        if kind == "websocket.connect":
            self.client_state = WebSocketState.CONNECTED
        elif kind == "websocket.disconnect":
            self.client_state = WebSocketState.DISCONNECTED
        return message

    async def send(self, message: Message) -> None:
        if self.application_state is WebSocketState.DISCONNECTED:
            raise RuntimeError('cannot call "send" once a close message has been sent')
        kind = message["type"]
        try:
            await self._send(message)
        except OSError:  # the server says the peer is gone (Starlette's rule)
            self.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(1006) from None
        if kind == "websocket.accept":
            self.application_state = WebSocketState.CONNECTED
        elif kind == "websocket.close":
            self.application_state = WebSocketState.DISCONNECTED

    # -- the handler's API -------------------------------------------------------------------

    async def accept(self, subprotocol: str | None = None,
                     headers: typing.Iterable[tuple[bytes, bytes]] | None = None) -> None:
        """Complete the handshake (101 Switching Protocols), choosing one of the client's
        `subprotocols` if any; `headers` go on the 101."""
        if self.client_state is WebSocketState.CONNECTING:
            await self.receive()  # the connect message
        await self.send({"type": "websocket.accept", "subprotocol": subprotocol,
                         "headers": list(headers or ())})

    @property
    def subprotocols(self) -> list[str]:
        """What the client offered in Sec-WebSocket-Protocol, in its order."""
        offered = self.headers.get("sec-websocket-protocol", "")
        return [name.strip() for name in offered.split(",") if name.strip()]

    def _checked(self, message: Message) -> Message:
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        return message

    def _connected(self) -> None:
        if self.application_state is not WebSocketState.CONNECTED:
            raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')

    async def receive_text(self) -> str:
        self._connected()
        return typing.cast(str, self._checked(await self.receive())["text"])

    async def receive_bytes(self) -> bytes:
        self._connected()
        return typing.cast(bytes, self._checked(await self.receive())["bytes"])

    async def receive_json(self, mode: str = "text") -> typing.Any:
        if mode not in ("text", "binary"):
            raise RuntimeError('the "mode" argument should be "text" or "binary"')
        self._connected()
        message = self._checked(await self.receive())
        return orjson.loads(message["text"] if mode == "text" else message["bytes"])

    async def iter_text(self) -> typing.AsyncIterator[str]:
        """Each text message until the peer closes (then the loop just ends)."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> typing.AsyncIterator[bytes]:
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> typing.AsyncIterator[typing.Any]:
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass

    async def send_text(self, data: str) -> None:
        await self.send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self.send({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: typing.Any, mode: str = "text") -> None:
        if mode not in ("text", "binary"):
            raise RuntimeError('the "mode" argument should be "text" or "binary"')
        encoded = orjson.dumps(data)
        if mode == "text":
            await self.send({"type": "websocket.send", "text": encoded.decode("utf-8")})
        else:
            await self.send({"type": "websocket.send", "bytes": encoded})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close with `code`; before accept() this refuses the handshake (HTTP 403)."""
        await self.send({"type": "websocket.close", "code": code, "reason": reason or ""})

    def __repr__(self) -> str:
        return f"<WebSocket {self.path}>"


class WebSocketClose:
    """Starlette's: an ASGI app that refuses or closes a WebSocket with `code`."""

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code, self.reason = code, reason or ""

    async def __call__(self, scope: typing.Any, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.close", "code": self.code, "reason": self.reason})


async def run_endpoint(route: typing.Any, websocket: WebSocket,
                       pool_run: typing.Callable[..., typing.Any]) -> None:
    """Run a WebSocket route's handler (its dependencies first, as for HTTP routes) and end
    the connection as Starlette and FastAPI do: a handler that returns closes with 1000;
    WebSocketException closes with its code; invalid parameters close with 1008; an
    HTTPException (from a dependency) refuses the handshake with its status; any other
    exception closes with 1011, or refuses with 500 before accept(), and is logged. Before
    accept(), a close is a refusal (403). Shared by our server and the ASGI bridge."""
    try:
        if route.plan is not None:
            await route.plan.run(websocket, pool_run)
        else:
            kwargs = route.binding.bind(websocket)
            if route.binding.pass_request:
                await route.endpoint(websocket, **kwargs)
            else:
                await route.endpoint(**kwargs)
    except WebSocketDisconnect:
        pass
    except WebSocketException as exc:
        await _end(websocket, exc.code, exc.reason)
    except RequestValidationError as exc:
        logger.info("WebSocket %s: invalid parameters: %s", websocket.path, exc.errors)
        await _end(websocket, 1008)
    except HTTPException as exc:
        await _refuse(websocket, exc.status_code, str(exc.detail))
    except Exception:
        logger.exception("Exception in WebSocket handler for %s", route.path)
        await _refuse(websocket, 500, "Internal Server Error", 1011)
    finally:
        await _end(websocket, 1000)


async def _end(websocket: WebSocket, code: int, reason: str = "") -> None:
    if websocket.application_state is WebSocketState.DISCONNECTED \
            or websocket.client_state is WebSocketState.DISCONNECTED:
        return
    try:
        await websocket.close(code, reason)
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # gone meanwhile: nothing is owed


async def _refuse(websocket: WebSocket, status: int, text: str, code: int = 1008) -> None:
    """An HTTP refusal before accept() (when the server can send one; else a close, a 403);
    after it, a close with `code`."""
    if websocket.application_state is not WebSocketState.CONNECTING or not websocket.http_denial:
        await _end(websocket, code)
        return
    try:
        await websocket.send({"type": "websocket.http.response.start", "status": status,
                              "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await websocket.send({"type": "websocket.http.response.body", "body": text.encode() + b"\n"})
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass
    websocket.application_state = WebSocketState.RESPONSE
