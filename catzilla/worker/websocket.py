"""One WebSocket connection, from its HTTP/1.1 upgrade request to the close.

The `websockets` library's sans-I/O `ServerProtocol` checks the handshake and does the
framing (masking, control frames, the close handshake, the message size limit, permessage-
deflate); this object moves bytes between it and the transport, assembles fragmented
messages (and checks that a text message is UTF-8, which the library leaves to its I/O
layers), and speaks ASGI's websocket messages to the handler's `catzilla.websockets.
WebSocket`: `receive()` and `send(message)`, so that the framework side never sees a byte.

The connection takes the transport over from `HttpProtocol` once the upgrade request's head
is parsed (`transport.set_protocol`); what arrived after the head is fed here. Reading waits
until the handler accepts (a client may not send frames before the 101 anyway), and pauses
whenever --ws-max-queue messages wait for the handler.
"""
from __future__ import annotations

import asyncio
import codecs
import collections
import logging
import os
import typing
import urllib.parse

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import CloseCode, Opcode
from websockets.http11 import Request as HandshakeRequest
from websockets.http11 import Response as HandshakeResponse
from websockets.protocol import OPEN, SEND_EOF
from websockets.server import ServerProtocol

from ..logs import access_logger
from ..websockets import WebSocket, run_endpoint

if typing.TYPE_CHECKING:
    from ..request import Request
    from ..routing import Route

__all__ = ["WebSocketConnection", "ClientDisconnected", "wants_websocket"]

logger = logging.getLogger("catzilla.worker")
# The library's own lines ("connection open") repeat our access log: warnings and up only.
_protocol_logger = logging.getLogger("catzilla.worker.websocket")
_protocol_logger.setLevel(logging.WARNING)

GOING_AWAY = CloseCode.GOING_AWAY  # 1001: the server stops (or drains for a reload)
OP_TEXT, OP_BINARY, OP_CONT, OP_PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG


class ClientDisconnected(OSError):
    """Sent to a connection that is closed (uvicorn's name; Starlette turns an OSError out
    of send into WebSocketDisconnect)."""


def wants_websocket(request: "Request", header_map: dict[str, str]) -> bool:
    """An opening handshake (RFC 6455 4.1): GET with `Upgrade: websocket`."""
    return request.method == "GET" and "websocket" in header_map.get("upgrade", "").lower()


class WebSocketConnection(asyncio.Protocol):
    def __init__(self, worker: typing.Any, route: "Route", request: "Request") -> None:
        config = worker.config
        self.worker = worker
        self.route = route
        self.request = request
        self.loop: asyncio.AbstractEventLoop = worker.loop
        self.ws = ServerProtocol(
            max_size=config.ws_max_size, logger=_protocol_logger,
            extensions=[ServerPerMessageDeflateFactory()] if config.ws_per_message_deflate else None,
        )
        self.stats = worker.stats_slot  # this worker's stats slot (None with --no-stats)
        self.max_queue = config.ws_max_queue
        self.ping_interval = config.ws_ping_interval
        self.ping_timeout = config.ws_ping_timeout
        self.transport: asyncio.Transport | None = None
        self.handshake: HandshakeResponse | None = None  # the 101, sent when the handler accepts
        self.accepted = False
        self.responded = False  # an HTTP answer went out instead of the 101
        self.connect_sent = False
        self.messages: collections.deque[dict[str, typing.Any]] = collections.deque()
        self.arrived: asyncio.Future[None] | None = None  # the handler waits for a message
        self.drained: asyncio.Future[None] | None = None  # the handler waits for the buffer
        self.reading_paused = False
        self.writing_paused = False
        self.early = bytearray()  # bytes before the handler accepted: fed once it has
        # A message in pieces: its opcode, its parts, and for text an incremental decoder.
        self.fragments: list[bytes] = []
        self.fragment_text = False
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.disconnect: dict[str, typing.Any] | None = None  # the message once closed
        self.opened = self.last_seen = self.loop.time()
        self.ping_sent_at = 0.0  # awaiting its pong since then (0: not awaiting)
        self.ping_payload = b""
        self.close_sent_at = 0.0
        self.task: asyncio.Task[None] | None = None
        self.denial: tuple[int, list[tuple[bytes, bytes]]] | None = None  # an HTTP refusal's head
        self.refusal: tuple[int, str] | None = None  # the code and reason of a close before accept

    # -- the takeover ----------------------------------------------------------------------

    def start(self, transport: asyncio.Transport, rest: bytes) -> None:
        """Called by HttpProtocol with the transport it handed over, and the bytes that
        followed the upgrade request's head."""
        try:
            self._start(transport, rest)
        except Exception:
            logger.exception("could not start the WebSocket for %s", self.request.path)
            transport.abort()

    def _start(self, transport: asyncio.Transport, rest: bytes) -> None:
        self.transport = transport
        self.worker.websockets.add(self)
        self.early += rest
        transport.pause_reading()  # until the handler accepts
        self.reading_paused = True
        # The library reads the head itself (and only then expects frames): it gets the one
        # httptools parsed, written out again.
        self.ws.receive_data(_handshake_head(self.request))
        events = self.ws.events_received()
        if not events or not isinstance(events[0], HandshakeRequest):
            self._flush()  # the library refused the head (431 for a line over its limit)
            self.responded = True
            return
        response = self.ws.accept(events[0])
        if response.status_code != 101:  # not a valid opening handshake: the library's answer
            self._respond(response)
            return
        self.handshake = response
        socket = WebSocket.from_request(self.request, self.receive, self.send, http_denial=True)
        self.task = task = self.loop.create_task(self._run(socket))
        handlers = self.worker.websocket_handlers  # for the worker to cancel when it stops
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    async def _run(self, socket: WebSocket) -> None:
        await run_endpoint(self.route, socket, self.worker.executor.run_in_pool)

    # -- ASGI's websocket messages, for catzilla.websockets.WebSocket ------------------------

    async def receive(self) -> dict[str, typing.Any]:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        while not self.messages:
            if self.disconnect is not None:
                return self.disconnect
            self.arrived = self.loop.create_future()
            await self.arrived
        message = self.messages.popleft()
        if self.reading_paused and self.accepted and len(self.messages) < self.max_queue \
                and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return message

    async def send(self, message: typing.Mapping[str, typing.Any]) -> None:
        kind = message["type"]
        if self.disconnect is not None or self.transport is None or self.responded:
            raise ClientDisconnected(f"cannot send {kind!r}: the WebSocket is closed")
        ws = self.ws
        if kind == "websocket.accept":
            self._accept(message.get("subprotocol"), message.get("headers") or ())
        elif kind == "websocket.send":
            if not self.accepted:
                raise RuntimeError("send before accept: call websocket.accept() first")
            if ws.state is not OPEN:
                raise ClientDisconnected("the WebSocket is closing")
            text = message.get("text")
            if text is not None:
                ws.send_text(text.encode("utf-8"))
            else:
                ws.send_binary(message["bytes"])
            if self.stats is not None:
                self.stats.websocket(0, 0, 1)
            self._flush()
            if self.writing_paused:
                self.drained = self.loop.create_future()
                await self.drained
        elif kind == "websocket.http.response.start":  # ASGI's denial response extension
            if self.accepted:
                raise RuntimeError("an HTTP response after accept()")
            self.denial = (message["status"], list(message.get("headers") or ()))
        elif kind == "websocket.http.response.body":
            status, headers = self.denial or (403, [])
            response = ws.reject(status, "")
            response.body = bytes(message.get("body", b""))
            del response.headers["Content-Length"]
            response.headers["Content-Length"] = str(len(response.body))
            for name, value in headers:
                if name.lower() == b"content-type":
                    del response.headers["Content-Type"]
                response.headers[name.decode("latin-1")] = value.decode("latin-1")
            self._respond(response)
        elif kind == "websocket.close":
            code = message.get("code", 1000)
            reason = message.get("reason") or ""
            if not self.accepted:
                self.refusal = (code, reason)  # a 403 on the wire; the TestClient reports the code
                self._respond(ws.reject(403, "Forbidden\n"))
            elif ws.state is OPEN:
                ws.send_close(code, reason)
                self.close_sent_at = self.loop.time()
                self._flush()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")

    def _accept(self, subprotocol: str | None, headers: typing.Iterable[tuple[bytes, bytes]]) -> None:
        if self.accepted:
            raise RuntimeError("the WebSocket is accepted already")
        response = self.handshake
        assert response is not None
        if subprotocol is not None:
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
        for name, value in headers:
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        _our_server_header(response)
        self.ws.send_response(response)
        self.accepted = True
        if self.stats is not None:
            self.stats.websocket(1, 0, 0)  # open until connection_lost
        self.handshake = None
        self._log(101)
        self._flush()
        if self.early:
            data, self.early = bytes(self.early), bytearray()
            self.data_received(data)
        if self.transport is not None and len(self.messages) < self.max_queue:
            self.reading_paused = False
            self.transport.resume_reading()

    def _respond(self, response: HandshakeResponse) -> None:
        """An HTTP answer instead of the 101 (then the connection closes)."""
        if self.responded:
            return
        self.responded = True
        _our_server_header(response)
        self.ws.send_response(response)
        self._log(response.status_code)
        self._flush()

    def _log(self, status: int) -> None:
        if self.worker.access_log:
            client = f"{self.request.client[0]}:{self.request.client[1]}" if self.request.client else "-"
            access_logger.info('%s - "WebSocket %s" %d', client, self.request.path, status,
                               extra={"client": client, "status": status})

    # -- transport events ------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self.accepted:
            self.early += data
            return
        self.last_seen = self.loop.time()
        ws = self.ws
        ws.receive_data(data)
        for frame in ws.events_received():
            opcode = frame.opcode
            if opcode is OP_TEXT or opcode is OP_BINARY or opcode is OP_CONT:
                self._piece(frame.opcode, frame.data, frame.fin)
            elif opcode is OP_PONG:
                if self.ping_sent_at and bytes(frame.data) == self.ping_payload:
                    self.ping_sent_at = 0.0
        self._flush()
        if len(self.messages) >= self.max_queue and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _piece(self, opcode: typing.Any, data: bytes, fin: bool) -> None:
        if opcode is not OP_CONT:
            self.fragment_text = opcode is OP_TEXT
        try:
            if self.fragment_text:
                # Checked as it arrives: a message cut inside a character is fine, bad
                # bytes fail at once (1007), not after the whole message was buffered.
                text = self.decoder.decode(data, final=fin)
                if fin and not self.fragments:
                    self._deliver({"type": "websocket.receive", "text": text})
                    return
                self.fragments.append(text)  # type: ignore[arg-type]
            else:
                if fin and not self.fragments:
                    self._deliver({"type": "websocket.receive", "bytes": bytes(data)})
                    return
                self.fragments.append(bytes(data))
        except UnicodeDecodeError as exc:
            self.decoder.reset()
            self.fragments = []
            self.ws.fail(CloseCode.INVALID_DATA, f"invalid UTF-8 at position {exc.start}")
            return
        if fin:
            parts, self.fragments = self.fragments, []
            if self.fragment_text:
                self._deliver({"type": "websocket.receive", "text": "".join(parts)})  # type: ignore[arg-type]
            else:
                self._deliver({"type": "websocket.receive", "bytes": b"".join(parts)})

    def _deliver(self, message: dict[str, typing.Any]) -> None:
        if self.stats is not None:
            self.stats.websocket(0, 1, 0)
        self.messages.append(message)
        self._wake()

    def _wake(self) -> None:
        arrived = self.arrived
        if arrived is not None and not arrived.done():
            arrived.set_result(None)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.ws.data_to_send():
            if data is SEND_EOF or data == SEND_EOF:
                transport.close()  # the server closes TCP first (RFC 6455 7.1.1)
                break
            transport.write(data)
        ws = self.ws
        if self.disconnect is None and (ws.close_rcvd is not None or ws.eof_sent):
            self._closed(*self._close_code())

    def _close_code(self) -> tuple[int, str]:
        """The code the handler's disconnect carries: the peer's, else ours (a protocol
        error, an oversize message), else 1006 (the connection just ended)."""
        close = self.ws.close_rcvd or self.ws.close_sent
        return (int(close.code), close.reason) if close is not None else (CloseCode.ABNORMAL_CLOSURE, "")

    def _closed(self, code: int, reason: str) -> None:
        if self.disconnect is None:
            self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._wake()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.accepted and self.transport is not None and self.stats is not None:
            self.stats.websocket(-1, 0, 0)
        self.transport = None
        self.worker.websockets.discard(self)
        self._closed(*self._close_code())
        for waiter in (self.drained,):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # -- the worker's --------------------------------------------------------------------------

    def going_away(self) -> None:
        """The worker stops: close with 1001 (the handler's receive() gets the disconnect)."""
        if self.transport is None:
            return
        if not self.accepted:
            self._respond(self.ws.reject(503, "Service Unavailable\n"))
        elif self.ws.state is OPEN:
            self.ws.send_close(GOING_AWAY, "server shutting down")
            self.close_sent_at = self.loop.time()
            self._flush()
        self._closed(GOING_AWAY, "server shutting down")

    def check_timeouts(self, now: float) -> None:
        """About once a second (the worker's tick): pings, and peers that went silent."""
        transport = self.transport
        if transport is None:
            return
        if not self.accepted:
            # The handshake is a request whose answer is owed: a handler that neither
            # accepts nor refuses within --request-timeout gets it answered 504.
            limit = self.worker.config.request_timeout
            if not self.responded and limit and now - self.opened >= limit:
                logger.warning("WebSocket %s: the handler did not accept within %g s (--request-timeout)",
                               self.request.path, limit)
                self._respond(self.ws.reject(504, "Gateway Timeout\n"))
                if self.task is not None:
                    self.task.cancel()
            return
        if self.close_sent_at:
            if self.ping_timeout and now - self.close_sent_at >= self.ping_timeout:
                transport.abort()  # the peer never answered our close frame
            return
        if self.ping_sent_at:
            if self.ping_timeout and now - self.ping_sent_at >= self.ping_timeout:
                logger.info("WebSocket %s: no pong within %g s (--ws-ping-timeout); closing",
                            self.request.path, self.ping_timeout)
                self._closed(CloseCode.ABNORMAL_CLOSURE, "keepalive ping timeout")
                self.ws.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                self.close_sent_at = now  # a peer that takes not even the close is aborted
                self._flush()
            return
        if self.ping_interval and now - self.last_seen >= self.ping_interval and self.ws.state is OPEN:
            self.ping_payload = os.urandom(4)
            self.ping_sent_at = now
            self.last_seen = now
            self.ws.send_ping(self.ping_payload)
            self._flush()


def _our_server_header(response: HandshakeResponse) -> None:
    if "Server" in response.headers:  # the library's name and version: ours, as on every response
        del response.headers["Server"]
    response.headers["Server"] = "catzilla"


def _handshake_head(request: "Request") -> bytes:
    target = urllib.parse.quote(request.path) + ("?" + request.query_string if request.query_string else "")
    lines = [f"GET {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in request.headers.multi_items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
