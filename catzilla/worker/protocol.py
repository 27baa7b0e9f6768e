"""HTTP/1.1 over one TCP connection: httptools parses, this object keeps the state.

One request is handled at a time per connection. Requests a client pipelines behind a
running one are parsed (their bodies are bounded by the body limit) and queued in order, and
reading pauses until the queue is empty again, so a client cannot make us buffer without
limit. Pausing costs a system call, so it happens only when a second request actually
arrives early, never on the ordinary request-response path.
"""
from __future__ import annotations

import asyncio
import collections
import enum
import logging
import socket
import struct
import time
import typing
import httptools

from .._native import Connection, HeaderCollector, decode_component, finish_inline, register_connection, \
    valid_authority
from ..background_tasks import inline
from ..datastructures import Address
from ..errors import HeaderError
from ..pipeline import router_refusal
from ..logs import access_logger
from ..forms import FormError, MultipartReceiver
from ..request import Request
from ..responses import Response, error_response
from .exchange import Exchange
from .executor import failure, run_inline
from .reception import CONTINUE, METHODS, BodyReception
from .sendfile import send_parts
from .websocket import WebSocketConnection, wants_websocket

if typing.TYPE_CHECKING:
    from .._native import WorkerSlot
    from ..app import Catzilla
    from ..background_tasks import BackgroundRunner
    from ..config import Config
    from .executor import Executor
    from .pool import ThreadPool

__all__ = ["HttpProtocol", "Reception"]

logger = logging.getLogger("catzilla.worker")

perf_counter = time.perf_counter


class WorkerInterface(typing.Protocol):
    """What a connection uses of the worker that accepted it (catzilla.worker.server.Worker):
    the protocol depends on this, never on the worker's class."""

    app: "Catzilla"
    config: "Config"
    loop: asyncio.AbstractEventLoop
    executor: "Executor"
    pool: "ThreadPool"
    runner: "BackgroundRunner"
    stats_slot: "WorkerSlot | None"  # this worker's row block in shared memory, or None
    unmatched_index: int  # the stats row of requests no route answered
    connections: set["HttpProtocol"]
    websockets: set[WebSocketConnection]  # connections upgraded to WebSockets
    websocket_handlers: set[asyncio.Task[None]]  # their handlers' Tasks
    proxies: typing.Any  # TrustedProxies (catzilla.worker.forwarded), None with --no-proxy-headers
    root_path: str  # the app's root path (stripped from a request path that carries it)
    close_connections: bool  # answer with `connection: close` (draining, --keep-alive-timeout 0)
    common_close: bytes  # the headers every response carries (server, date, connection)
    common_keep_alive: bytes
    common_keep_alive_10: bytes
    probes: dict[str, typing.Callable[[], Response]]
    access_log: bool
    access: typing.Any  # its AccessLog
    handled: int
    max_requests: int

    def retire(self) -> None: ...


class Reception(enum.Enum):
    """Where the connection is in receiving the next request."""

    IDLE = "idle"  # between requests: the keep-alive timeout applies
    HEAD = "head"  # request line and headers arriving: the header timeout applies
    BODY = "body"  # body arriving: must keep making progress (header timeout between reads)


IDLE, HEAD, BODY = Reception.IDLE, Reception.HEAD, Reception.BODY
# Stored: IDLE or HEAD. BODY is HEAD once the collector has the whole head (see _reception).


class _Rejected(Exception):
    """Raised inside a parser callback to stop parsing; the reason is on the protocol."""


# What data_received answers when the parser raises it (see _feed_failed); anything else
# is a bug of ours and goes up to the transport.
FEED_ERRORS = (_Rejected, httptools.HttpParserError, httptools.HttpParserUpgrade)
# What Connection's usual request uses of ours (ext/connection.c).
register_connection(IDLE, HEAD, FEED_ERRORS, failure, inline, finish_inline, perf_counter)


class _Refusal:
    """A request refused while an earlier one runs: queued so it is answered in order."""

    __slots__ = ("status", "detail")

    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


_CONTINUE = "continue"  # after an Upgrade request without a body: parse on as HTTP/1.1
_DISCARD = "discard"  # after CONNECT: the bytes are a tunnel's, never requests


class _Discarder:
    """Stands in for the parser once nothing more on a connection may be parsed."""

    def feed_data(self, data: bytes) -> None:
        pass

    def get_http_version(self) -> str:
        return "1.1"

    def should_keep_alive(self) -> bool:
        return False


class _BodyReader:
    """Reads the body of an Upgrade request that httptools skipped, as its framing says: a
    second parser, primed with a head that has the same framing, delivers the body chunks
    (and trailers) to the connection. The request is handled once the body is complete,
    and the connection closes after its response."""

    def __init__(self, conn: "HttpProtocol", request: Request, header_map: dict[str, str]) -> None:
        self.conn = conn
        self.request = request
        self.started = False  # the primed head is behind us
        self.done = False
        self.trailers: list[tuple[str, str]] = []
        self.parser = httptools.HttpRequestParser(self)
        framing = (b"transfer-encoding: chunked" if header_map.get("transfer-encoding")
                   else b"content-length: " + header_map["content-length"].encode("latin-1"))
        self.parser.feed_data(b"POST / HTTP/1.1\r\nhost: body\r\n" + framing + b"\r\n\r\n")
        self.started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.started and not self.done:
            self.trailers.append((name.decode("latin-1").lower(), value.decode("latin-1").strip(" \t")))

    def on_body(self, chunk: bytes) -> None:
        if not self.done:
            self.conn.on_body(chunk)

    def on_message_complete(self) -> None:
        if not self.started or self.done:
            return  # the primed head has no body of its own; later bytes are ignored
        self.done = True
        conn, request = self.conn, self.request
        body = conn.body
        request.body = body[0] if len(body) == 1 else b"".join(body)
        request._trailers = request._trailers + self.trailers if self.trailers else request._trailers
        conn.body, conn.body_size = [], 0
        conn.reception = IDLE
        conn._dispatch(request, False)


def _reset(transport: asyncio.Transport) -> None:
    """Close now, with a reset: close() would wait for the buffer to drain, and even after
    abort() the kernel keeps trying to deliver what its own buffer holds (megabytes) to a
    peer that takes nothing. SO_LINGER 0 drops it (RFC 9293 3.10.4's ABORT)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


class HttpProtocol(Connection, BodyReception, asyncio.Protocol):
    # The fields the per-request path reads and writes are Connection's (ext/connection.c),
    # whose on_message_complete serves the usual request without a Python frame; the rest
    # are slots: with more attributes than an instance dict shares keys for (30), every
    # attribute and method access on the connection went through a materialized dict.
    __slots__ = (
        "body_limit", "body_size", "body_watch", "client_text", "draining_pipeline", "max_body_size",
        "on_header", "on_headers_complete", "on_url", "receiver", "router", "streamed", "tls", "unmatched",
        "unsent", "unsent_since", "upgrade_rest", "write_resumed", "writing_paused"
    )

    def __init__(self, worker: WorkerInterface) -> None:
        self.worker = worker
        config = worker.config
        self.max_body_size = config.max_body_size
        self.router = worker.app.router
        self.resolve = self.router.resolve  # where a request goes (catzilla.routing)
        self.static = self.router.static  # its table of paths without parameters
        self.executor = worker.executor
        self.straight = self.executor.straight  # routes run without Executor.start (see prepare)
        self.batch = self.executor.batch  # where the C way defers the routes run straight, or None
        self.stats_slot = worker.stats_slot  # this worker's stats slot, or None with --no-stats
        # The stats row of requests no route answered (404, 405, probes, refusals).
        self.unmatched = worker.unmatched_index
        self.bytes_in = 0
        # httptools calls the C collector for every URL piece and header line directly. When
        # some route receives its body its own way (streamed, parsed as it arrives, or under
        # a limit of its own), the end of each head goes through _head_complete, and the
        # collector's limit on Content-Length is the largest any route allows.
        largest_body = self.router.largest_body(self.max_body_size)
        self.collector = HeaderCollector(config.max_header_size,
                                         self.max_body_size if largest_body is None else largest_body)
        self.on_url = self.collector.on_url
        self.on_header = self.collector.on_header
        self.on_headers_complete = (self.collector.on_headers_complete if largest_body is None
                                    else self._head_complete)
        # The body being received: its limit, and (for a route that receives it its own way)
        # the request taken at its head and what its chunks are fed to (a BodyStream or a
        # MultipartReceiver) instead of `body`.
        self.body_limit = self.max_body_size
        self.receiving: Request | None = None
        self.receiver: typing.Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: Address | None = None
        self.client_text = "-"  # host:port as the logs show it, made once per connection
        self.tls = self.trusted = self.edge = False  # see connection_made
        # Reception of the request being parsed.
        self.reception = IDLE
        # Timeouts are checked once a tick, but measured from the loop's own clock (a cached
        # value, no system call), so they never fire early.
        self.clock = worker.loop.time
        self.head_started = 0.0
        self.last_activity = self.clock()
        self.body: list[bytes] = []
        self.body_size = 0
        self.rejection: tuple[int, str] | None = None
        # Handling, one request at a time: the one being answered (see exchange.py).
        self.busy = False
        self.exchange: Exchange | None = None
        self.keep_alive = True
        self.pipeline: collections.deque[typing.Any] = collections.deque()
        self.reading_paused = False
        self.writing_paused = False
        self.draining_pipeline = False
        self.write_resumed: asyncio.Future[None] | None = None
        self.streamed = 0  # bytes of the streamed response being written
        # How to go on after an Upgrade request's head (see _upgrade): set by on_message_complete,
        # read when httptools raises HttpParserUpgrade right after it.
        self.upgrade_rest: typing.Any = None
        # Progress checks, once a tick: unsent response bytes (for --write-timeout), and the
        # request whose body is watched for --min-body-rate: (its head's start, since, bytes).
        self.unsent = 0
        self.unsent_since = 0.0
        self.body_watch: tuple[float, float, int] = (-1.0, 0.0, 0)

    # -- transport events ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=self.worker.config.write_buffer_high)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = Address(peer[0], peer[1])
            self.client_text = f"{peer[0]}:{peer[1]}"
        self.worker.connections.add(self)
        # Decided once per connection: whether every request needs _at_edge (TLS, a root
        # path), or only one with a proxy's forwarding fields from a trusted peer (the
        # collector notes those), so that a plain connection pays a test or two per request.
        worker = self.worker
        self.tls = transport.get_extra_info("sslcontext") is not None
        proxies = worker.proxies
        # A Unix socket's peer (no address) can only be a process on this host.
        self.trusted = proxies is not None and (self.client is None or self.client.host in proxies)
        self.edge = self.tls or bool(worker.root_path)

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.connections.discard(self)
        self.transport = None
        self.pipeline.clear()
        if self.receiving is not None:
            self._body_lost()
        if self.write_resumed is not None and not self.write_resumed.done():
            self.write_resumed.set_result(None)

    def eof_received(self) -> bool | None:
        # The client is done sending; answer what it already sent, then close.
        if self.receiving is not None:
            self._body_lost()  # ... but a body cut short will never be whole
        if self.busy or self.pipeline:
            self.keep_alive = False
            return True
        return None

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.write_resumed is not None and not self.write_resumed.done():
            self.write_resumed.set_result(None)
        self._run_pipeline()

    # data_received is Connection's (ext/connection.c): it counts and times the bytes and
    # feeds them to the parser; what feed_data raises goes to _feed_failed, and a request
    # that waits for a 100 (Continue) to _answer_continue.

    def _feed_failed(self, data: bytes, exc: Exception) -> None:
        """What data_received does when the parser raises `exc` (one of FEED_ERRORS), as its
        `except` clause: called with `exc` being handled."""
        if isinstance(exc, _Rejected):
            self._reject()
        elif isinstance(exc, httptools.HttpParserCallbackError):
            refusal = exc.__context__
            if isinstance(refusal, HeaderError):
                self.rejection = (refusal.status, refusal.reason)
            elif self.rejection is None:
                logger.exception("error in a parser callback")
                self.rejection = (500, "Internal Server Error")
            self._reject()
        elif isinstance(exc, httptools.HttpParserUpgrade):
            # httptools stops after the head of an Upgrade (or CONNECT) request, skipping any
            # body: what follows is never parsed as the next request until _upgrade says how.
            self._after_upgrade(data[exc.args[0]:] if exc.args else b"")
        else:  # httptools.HttpParserError
            if not self.keep_alive and (self.busy or self.pipeline):
                return  # bytes after a "Connection: close" request: ignored, we close soon
            self.rejection = (400, f"Malformed HTTP request: {exc}")
            self._reject()

    def _answer_continue(self) -> None:
        """The collector saw `Expect: 100-continue` and the bytes fed so far raised nothing."""
        if not self.busy and not self.pipeline and self.parser.get_http_version() != "1.0":
            # (no 1xx for HTTP/1.0, RFC 9110 15.2) Only when this request is next in line: a
            # 100 must not cut into the response to an earlier pipelined request. A client
            # that hears nothing sends the body after its own short wait (RFC 9110 10.1.1).
            self.collector.answer_continue()
            self.transport.write(CONTINUE)  # type: ignore[union-attr]

    # -- parser callbacks ------------------------------------------------------------------

    # on_url, on_header and on_headers_complete are the collector's (see __init__).

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.body_limit:  # chunked bodies announce no length
            self._refuse(413, "Content Too Large")
        receiver = self.receiver
        if receiver is None:
            self.body.append(body)
        else:
            try:
                receiver.feed(body)
            except FormError as exc:
                self._refuse(exc.status_code, str(exc))

    # on_message_complete is Connection's (ext/connection.c): the usual request, served in C
    # as the methods below would, and any other by _message_complete.

    def _message_complete(self) -> None:
        """The end of a request, the whole way (what Connection.on_message_complete does
        for the usual request is what this does for it)."""
        if self.receiving is not None:
            self.reception = IDLE
            self._received()
            return
        body = self.body
        data = (body[0] if len(body) == 1 else b"".join(body)) if body else b""
        # The usual head is handed over as a Request in one C call (ext/headers.c); anything
        # else (another target form, an Upgrade, trailers) goes the longer way.
        taken = self.collector.take_request(self.parser, data, self.client)
        if taken is None:
            request, keep_alive, unusual = self._new_request(*self.collector.take(), data)
        else:
            request, keep_alive, forwarded = taken
            unusual = None
            if self.edge or (forwarded and self.trusted):
                self._at_edge(request, request._header_map)
        self.reception = IDLE
        if body:
            self.body = []
            self.body_size = 0
            self.body_limit = self.max_body_size
        if not self.keep_alive:
            # RFC 9112 9.6: a connection that answered (or is answering) with `close`
            # processes no further request; one pipelined after it is dropped unrun.
            return
        if unusual is not None:
            request._trailers = unusual
            if self.parser.should_upgrade():
                self._upgrade(request, keep_alive)
                return
        if self.busy or self.pipeline:  # _dispatch, without the call on the usual path
            self._queue(request, keep_alive)
        else:
            self._handle(request, keep_alive)

    def _new_request(self, path: str | None, query: str, header_items: list[tuple[str, str]],
                     header_map: dict[str, str],
                     body: bytes) -> tuple[Request, bool, list[tuple[str, str]] | None]:
        """The request of a head the collector handed over with take(), whether to keep the
        connection alive after it, and its trailers (None on the usual path). The usual
        head takes the shorter way: HeaderCollector.take_request, which checks the same."""
        parser = self.parser
        unusual = None
        if path is None:  # not a plain origin-form request: see _unusual_head
            path, query, unusual = self._unusual_head(query, header_items, header_map)
        keep_alive = parser.should_keep_alive()
        # Kept alive without a Connection header can only be HTTP/1.1: no need to ask.
        if keep_alive and "connection" not in header_map:
            version = "1.1"
        else:
            version = parser.get_http_version()
            if version == "1.0" and keep_alive and "transfer-encoding" in header_map:
                keep_alive = False  # framing HTTP/1.0 does not know: close after (RFC 9112 6.1)
        if version[0] != "1":  # HTTP/0.9, HTTP/2.0 in an HTTP/1 request line
            self._refuse(505, "HTTP Version Not Supported")
        if version == "1.1" and "host" not in header_map:
            self._refuse(400, "HTTP/1.1 request without a Host header")  # RFC 9112 3.2
        method = parser.get_method()
        request = Request(METHODS.get(method) or method.decode("latin-1"), path, query, header_items,
                          body, self.client, version, header_map)
        if self.edge or self.trusted:
            self._at_edge(request, header_map)
        return request, keep_alive, unusual

    def _dispatch(self, request: Request, keep_alive: bool) -> None:
        if self.busy or self.pipeline:
            self._queue(request, keep_alive)
        else:
            self._handle(request, keep_alive)

    def _queue(self, request: Request, keep_alive: bool) -> None:
        """Pipelined behind a running request: answered in order, and reading pauses."""
        self.pipeline.append((request, keep_alive))
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _unusual_head(self, target: str, items: list[tuple[str, str]],
                      header_map: dict[str, str]) -> tuple[str, str, list[tuple[str, str]]]:
        """The cold path of a head: an absolute-form target (RFC 9112 3.2.2, sent to
        proxies), `*` (OPTIONS), an authority (CONNECT), an Upgrade field, or trailers.
        Returns the path, the query and the trailers (empty when none came)."""
        trailers = self.collector.take_trailers() or []
        if target == "*":
            return "*", "", trailers
        try:
            url = httptools.parse_url(target.encode("latin-1"))
        except httptools.HttpParserInvalidURLError:
            self._refuse(400, "Invalid request target")
        if url.host is not None and "host" in header_map:
            # The target's authority wins over Host (RFC 9112 3.2.2), and must be one.
            host = url.host if b":" not in url.host else b"[" + url.host + b"]"
            authority = host if url.port is None else b"%s:%d" % (host, url.port)
            if not valid_authority(authority):
                self._refuse(400, "Invalid request target")
            header_map["host"] = authority.decode("latin-1")
            items[:] = [("host", header_map["host"]) if name == "host" else (name, value)
                        for name, value in items]
        return decode_component(url.path or b"/"), (url.query or b"").decode("latin-1"), trailers

    def _at_edge(self, request: Request, header_map: dict[str, str]) -> None:
        """The scheme (TLS, or a trusted proxy's word), the client a trusted proxy names,
        and the root path a request may still carry (Starlette's get_route_path)."""
        if self.tls:
            request.scheme = "https"
        if self.trusted and ("x-forwarded-for" in header_map or "forwarded" in header_map
                             or "x-forwarded-proto" in header_map):
            self.worker.proxies.apply(request, header_map)
        root = self.worker.root_path
        if root:
            path = request.path
            if path == root:
                request.path = "/"
            elif path.startswith(root) and path[len(root)] == "/":
                request.path = path[len(root):]

    # -- upgrades ----------------------------------------------------------------------------

    def _upgrade(self, request: Request, keep_alive: bool) -> None:
        """An Upgrade (or CONNECT) request is complete as far as httptools goes: it stops
        there and skips the body. A WebSocket handshake for a WebSocket route, arriving with
        nothing ahead of it on the connection, takes the transport over; anything else is
        served as an ordinary request (RFC 9110 7.8 lets a server ignore Upgrade)."""
        header_map = request._header_map or {}
        if request.method == "CONNECT":
            # What follows is a tunnel's bytes, never requests: answer, then close.
            self.upgrade_rest = _DISCARD
            self._dispatch(request, False)
        elif header_map.get("transfer-encoding") or header_map.get("content-length", "0") != "0":
            # The body is read as its framing says, by a parser of its own; where it ends in
            # the stream is unknown to us afterwards, so the connection closes after it.
            self.upgrade_rest = _BodyReader(self, request, header_map)
        elif wants_websocket(request, header_map) and not self.busy and not self.pipeline \
                and (route := self._websocket_route(request)) is not None:
            # The connection becomes the WebSocket's once httptools stops (_after_upgrade).
            self.upgrade_rest = WebSocketConnection(self.worker, route, request)
        else:
            # An Upgrade to what we do not serve: answered as plain HTTP (RFC 9110 7.8);
            # the client waits for a 101 before it sends anything else, so what follows is
            # HTTP and is parsed as such.
            self.upgrade_rest = _CONTINUE
            self._dispatch(request, keep_alive)

    def _websocket_route(self, request: Request) -> typing.Any:
        table = getattr(self.worker.app, "websocket_router", None)
        if table is None or not table.routes:
            return None
        route, params, _ = table.resolve("GET", request.path)
        if route is not None and params is not None:
            request.path_params = params
        return route

    def _after_upgrade(self, rest: bytes) -> None:
        """httptools has stopped after an Upgrade request's head; `rest` followed it."""
        how, self.upgrade_rest = self.upgrade_rest, None
        if isinstance(how, WebSocketConnection):
            # Handed over: from now on the transport's events go to the WebSocket.
            transport = self.transport
            self.parser = _Discarder()
            self.worker.connections.discard(self)
            self.transport = None
            if transport is not None:
                transport.set_protocol(how)
                how.start(transport, rest)
            return
        if isinstance(how, _BodyReader):
            self.parser = how.parser  # the rest of this connection feeds the body reader
        elif how is _CONTINUE:
            # No body: the next bytes are the next request, for a parser of its own (this
            # one stays stopped).
            self.parser = httptools.HttpRequestParser(self)
        else:
            self.parser = _Discarder()  # a tunnel's bytes (or a refused request's): ignored
            return
        if rest:
            self.bytes_in -= len(rest)  # counted once already, by the call that read them
            self.data_received(rest)

    # -- handling ----------------------------------------------------------------------------

    def _handle(self, request: Request, keep_alive: bool) -> None:
        worker = self.worker
        self.busy = True
        self.keep_alive = keep_alive = keep_alive and not worker.close_connections
        if not keep_alive:
            common = worker.common_close
        elif request.http_version == "1.1":
            common = worker.common_keep_alive
        else:
            common = worker.common_keep_alive_10
        # Probes first (ahead of every route), then the router decides, in one call: the
        # route (HEAD finds GET's), or 404, or 405 with Allow.
        path = request.path
        method = request.method
        probes = worker.probes
        if probes and path in probes:
            route = probe = None
        else:
            probe = False
            # A path without parameters is Router.resolve's first look-up: done here, its
            # frame saved; a template, a 404 or a 405 goes the whole way.
            table = self.static.get(path)
            route = None if table is None else table.get(method)
            if route is None:
                route, params, allow = self.resolve(method, path)
                if params is not None:
                    request.path_params = params
        row = self.unmatched if route is None else route.index
        stats_slot = self.stats_slot
        head_only = method == "HEAD"
        self.exchange = exchange = Exchange(self, request, route, common, head_only, keep_alive,
                                            row, perf_counter() if stats_slot is None else stats_slot.begin(row))
        if route is not None:
            if type(self.straight.get(route)) is bool:  # a bare inline handler: Executor.prepare
                run_inline(exchange, route, request, None)
            else:
                self.executor.start(exchange)
            return
        if probe is None:
            try:
                response = probes[path]()
            except Exception as exc:  # a failed probe still answers its request
                self.complete(exchange, *failure(exchange, exc))
                return
        else:
            unmatched = worker.app.unmatched_pipeline
            if unmatched is not None:
                # The app's middleware and exception handlers see its 404s and 405s too
                # (a CORS preflight is answered there); probes stay ahead of them.
                self.executor.start_pipeline(exchange, unmatched, router_refusal(allow))
                return
            response = (error_response(404, "Not Found") if allow is None
                        else error_response(405, "Method Not Allowed", {"allow": allow}))
        self.complete(exchange, response, response.encode(common, exchange.head_only))

    def _complete(self, exchange: Exchange, response: Response, data: bytes | None) -> None:
        """The response to the current request is ready: write it, then move on.

        The reference of `complete` (ext/connection.c), which does the usual case (bytes to
        write, a transport) in C and hands anything else to this method, whole."""
        worker = self.worker
        worker.handled = handled = worker.handled + 1
        if handled == worker.max_requests:  # max_requests 0: never
            worker.retire()
        stats_slot = self.stats_slot
        if stats_slot is not None and data is not None:  # a stream is counted when it ends
            stats_slot.end(exchange.row, exchange.started, response.status_code, self.bytes_in, len(data))
            self.bytes_in = 0
        if worker.access_log and not response.sends_file:  # a file's status is known later
            worker.access.exchange(exchange, response.status_code, None if data is None else len(data))
        transport = self.transport
        if transport is None:  # the client went away while the handler ran
            self._after_response()
            return
        if data is None:
            self.worker.loop.create_task(self._stream(exchange, response))
            return
        transport.write(data)
        request = exchange.request
        if request.background is None and self.keep_alive and not self.pipeline \
                and not self.reading_paused:
            # The common case, kept short: nothing to schedule, nothing queued.
            self.exchange = None
            self.busy = False
            request.responded = True
            self.last_activity = self.clock()
            return
        self._after_response()

    def _count(self, exchange: Exchange, status: int, bytes_out: int) -> None:
        self.stats_slot.end(exchange.row, exchange.started, status, self.bytes_in, bytes_out)
        self.bytes_in = 0

    def _log_access(self, exchange: Exchange, status: int, size: int | None) -> None:
        self.worker.access.exchange(exchange, status, size)  # its fields read in C (ext/accesslog.c)

    def _client_text(self, request: Request) -> str:
        """The client as the access log names it: the peer, or the one a trusted proxy named
        (as uvicorn logs it)."""
        client = request.client
        if client is self.client or client is None:
            return self.client_text
        return f"{client.host}:{client.port}" if client.port else client.host

    def _after_response(self) -> None:
        exchange = self.exchange
        self.exchange = None
        self.busy = False
        if exchange is not None:
            request = exchange.request
            request.responded = True
            if request.background:
                self.worker.runner.run(request.background)
        transport = self.transport
        if transport is None:
            return
        if not self.keep_alive:
            transport.close()
            return
        self.last_activity = self.clock()
        if self.pipeline:
            self._run_pipeline()
        elif self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()

    def _run_pipeline(self) -> None:
        if self.draining_pipeline:
            return  # already looping further up the stack
        self.draining_pipeline = True
        try:
            while self.pipeline and not self.busy and not self.writing_paused and self.transport is not None:
                item = self.pipeline.popleft()
                if isinstance(item, _Refusal):
                    self._send_rejection((item.status, item.detail))
                else:
                    self._handle(*item)
        finally:
            self.draining_pipeline = False
        if not self.pipeline and not self.busy and self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    async def _stream(self, exchange: Exchange, response: Response) -> None:
        if response.sends_file:  # a FileResponse: see _send_file
            return await self._send_file(exchange, response)
        transport = self.transport
        assert transport is not None
        head_only = exchange.head_only
        # HTTP/1.0 has no chunked coding: the body ends where the connection does.
        chunked = exchange.request.http_version != "1.0"
        if not chunked:
            self.keep_alive = False
        worker = self.worker
        exchange.common = common = worker.common_close if not self.keep_alive else worker.common_keep_alive
        try:
            start = response.encode_start(common, chunked)  # type: ignore[attr-defined]
        except Exception as exc:  # e.g. a header with a line break: nothing is sent yet
            response, data = failure(exchange, exc)
            transport.write(data)
            self.streamed = len(data)
            if self.stats_slot is not None:
                self._count(exchange, response.status_code, self.streamed)
            self._after_response()
            return
        transport.write(start)
        self.streamed = len(start)
        iterator = response.body_iterator  # type: ignore[attr-defined]
        last = b""
        try:
            if not head_only:
                if hasattr(iterator, "__aiter__"):
                    async for chunk in iterator:
                        await self._write_chunk(response, chunk, chunked)
                else:
                    iterator = iter(iterator)
                    done = object()
                    while True:
                        chunk = await worker.pool.run(next, iterator, done)
                        if chunk is done:
                            break
                        await self._write_chunk(response, chunk, chunked)
            if chunked and not head_only and self.transport is not None:  # HEAD: no body at all
                last = b"0\r\n\r\n"
                self.streamed += len(last)
        except ConnectionResetError:
            logger.info("client %s went away during a streamed response", self.client)
            self.keep_alive = False
        except Exception:
            # The status line is gone already: all we can do is cut the response short
            # so that the client sees it is incomplete.
            logger.exception("error while streaming the response body")
            self.keep_alive = False
        # Counted before the last bytes go out: whoever has seen the end sees the count.
        if self.stats_slot is not None:
            self._count(exchange, response.status_code, self.streamed)
        if last and self.transport is not None:
            self.transport.write(last)
        self._after_response()

    async def _send_file(self, exchange: Exchange, response: Response) -> None:
        """A FileResponse: its plan (status, head, parts) depends on this request's Range and
        validators; the file's bytes go with sendfile(2) (catzilla.worker.sendfile)."""
        request = exchange.request
        if self.transport is None:  # the client went away meanwhile
            self._after_response()
            return
        worker = self.worker
        config = worker.config
        common = exchange.common
        file = None
        try:
            status, head, parts, file = response.plan(  # type: ignore[attr-defined]
                request.headers, request.method, common, config.max_ranges)
        except Exception as exc:  # no file, a directory: nothing is sent yet
            failed, data = failure(exchange, exc)
            status, head, parts = failed.status_code, data, []  # type: ignore[assignment]
        self.transport.write(head)
        sent = len(head)
        try:
            if file is not None:
                sent += await send_parts(self, worker.loop, parts, file.fileno(),
                                         config.write_timeout, config.sendfile_chunk)
        except Exception as exc:  # the client went or stalled (OSError), or a bug: cut it short
            if isinstance(exc, OSError):
                logger.info("file response to %s cut short: %s", self.client_text, exc)
            else:
                logger.exception("error while sending a file response")
            self.keep_alive = False
            if self.transport is not None:
                _reset(self.transport)
        finally:
            if file is not None:
                file.close()
        if self.stats_slot is not None:
            self._count(exchange, status, sent)
        if worker.access_log:  # with the status and bytes actually sent (206, 304, ...)
            self._log_access(exchange, status, sent)
        self._after_response()

    async def _write_chunk(self, response: Response, chunk: typing.Any, chunked: bool) -> None:
        if self.transport is None:
            raise ConnectionResetError("client disconnected during a streamed response")
        data = response.encode_chunk(chunk, chunked)  # type: ignore[attr-defined]
        if data:
            self.transport.write(data)
            self.streamed += len(data)
        if self.writing_paused:
            self.write_resumed = self.worker.loop.create_future()
            await self.write_resumed

    # -- errors and timeouts -------------------------------------------------------------

    def _refuse(self, status: int, detail: str) -> typing.NoReturn:
        self.rejection = (status, detail)
        raise _Rejected()

    def _reject(self) -> None:
        """Answer a request we refuse to parse further, then close: after a framing error
        nothing that follows on this connection can be trusted."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        receiving = self.receiving
        if receiving is not None:
            if receiving._stream is not None:
                self._stream_failed(receiving)  # its handler, running already, answers
                return
            if isinstance(self.receiver, MultipartReceiver):
                self.receiver.close()
            self.receiving = self.receiver = None
        if self.busy or self.pipeline:
            self.pipeline.append(_Refusal(*(self.rejection or (400, "Bad Request"))))
        else:
            self._send_rejection(self.rejection)

    def _send_rejection(self, rejection: tuple[int, str] | None) -> None:
        status, detail = rejection or (400, "Bad Request")
        client = self.client_text
        logger.info("refused a request from %s: %d %s", client, status, detail)
        response = error_response(status, detail)
        data = response.encode(self.worker.common_close)
        if self.stats_slot is not None:  # counted with the worker's totals, as unmatched
            self.stats_slot.end(self.unmatched, self.stats_slot.begin(self.unmatched), status, self.bytes_in, len(data))
            self.bytes_in = 0
        if self.worker.access_log:  # the request line may be what was wrong: none is quoted
            access_logger.info('%s - "-" %d %d -', client, status, len(data),
                               extra={"client": client, "status": status})
        if self.transport is not None:
            self.transport.write(data)
            self.transport.close()
        self.pipeline.clear()

    def check_timeouts(self, now: float) -> None:
        """Called about once a second by the worker."""
        transport = self.transport
        if transport is None:
            return
        config = self.worker.config
        if config.write_timeout and self._write_stalled(now, transport, config.write_timeout):
            logger.info("closed the connection of %s: it took no response bytes for %.0f s "
                        "(--write-timeout)", self.client, config.write_timeout)
            _reset(transport)
            return
        if self.rejection is not None:
            return
        if self.busy:
            # A handler runs. Its request's body may still be arriving (a streaming route):
            # the body's timeouts apply, unless reading is paused (the handler is behind, or
            # the request waits its turn): then the client is not at fault.
            if self.receiving is None or self.reading_paused:
                return
            reception = BODY
        else:
            reception = self._reception()
        if reception is IDLE:
            # Draining, too: an idle connection lives out its keep-alive time, so a client
            # that reuses it soon gets an answer (with `connection: close`), not a reset.
            if now - self.last_activity >= config.keep_alive_timeout:
                transport.close()
        elif reception is HEAD:
            if now - self.head_started >= config.header_timeout:
                self.rejection = (408, "Request Timeout")
                self._reject()
        elif now - self.last_activity >= config.header_timeout or self._body_too_slow(now, config):
            self.rejection = (408, "Request Timeout")
            self._reject()

    def _write_stalled(self, now: float, transport: asyncio.Transport, limit: float) -> bool:
        """Response bytes wait in the buffer and the client has taken none for `limit`."""
        unsent = transport.get_write_buffer_size()
        if unsent == 0 or self.unsent == 0 or unsent < self.unsent:
            self.unsent, self.unsent_since = unsent, now  # empty, newly filled, or some taken
            return False
        self.unsent = unsent
        return now - self.unsent_since >= limit

    def _body_too_slow(self, now: float, config: typing.Any) -> bool:
        """The body being received averages under --min-body-rate, past the grace period.
        Measured from the first tick that saw this request's body arriving."""
        if not config.min_body_rate:
            return False
        if self.body_watch[0] != self.head_started:  # a new request: start watching it
            self.body_watch = (self.head_started, now, self.body_size)
            return False
        _, since, base = self.body_watch
        elapsed = now - since
        return elapsed >= config.body_rate_grace and self.body_size - base < config.min_body_rate * elapsed

    def _reception(self) -> Reception:
        if self.reception is HEAD and self.collector.headers_complete:
            return BODY
        return self.reception
