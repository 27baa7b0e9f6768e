"""Request bodies a route receives its own way, the part of HttpProtocol that decides it.

Most bodies are read whole before the handler runs (HttpProtocol.on_body appends them).
When some route of the app streams its body (`stream=True`), takes files or form fields
(its multipart body is parsed as it arrives), or has a body limit of its own, the end of
every head goes through `_head_complete`, which looks the route up before any byte of the
body: the body's limit is that route's, a streaming route's handler is dispatched at once
with a BodyStream its chunks go to (with flow control: `pause_body`/`resume_body`), and a
multipart body goes to a MultipartReceiver. An app without such routes never runs any of
this: its heads end in the header collector's C callback.
"""
from __future__ import annotations

import asyncio
import typing

from ..errors import HTTPException
from ..forms import FormError, FormLimits, MultipartReceiver, multipart_boundary
from ..headerparse import decode_component
from ..request import BodyStream, ClientDisconnect, Request
from ..routing import UNBOUNDED_BODY

__all__ = ["BodyReception", "CONTINUE", "METHODS"]

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")}
_BODILESS = frozenset((b"GET", b"HEAD"))  # without a Content-Length: no body (see _head_complete)


class BodyReception:
    """Mixed into HttpProtocol (catzilla.worker.protocol), whose state it shares."""

    __slots__ = ()  # the state is HttpProtocol's slots

    # HttpProtocol's, read and set here.
    worker: typing.Any
    collector: typing.Any
    parser: typing.Any
    transport: asyncio.Transport | None
    max_body_size: int
    body_limit: int
    body: list[bytes]
    body_size: int
    receiving: Request | None
    receiver: typing.Any
    rejection: tuple[int, str] | None
    reading_paused: bool
    pipeline: typing.Any
    busy: bool
    keep_alive: bool
    last_activity: float
    body_watch: tuple[float, float, int]
    reception: typing.Any
    resolve: typing.Callable[..., typing.Any]
    clock: typing.Callable[[], float]
    _refuse: typing.Callable[..., typing.NoReturn]
    _dispatch: typing.Callable[..., None]
    _upgrade: typing.Callable[..., None]
    _new_request: typing.Callable[..., typing.Any]

    def _head_complete(self) -> None:
        """The end of a head, when some route receives its body its own way (installed in
        __init__ only then). Decided from the route, before any byte of the body: its limit
        (a Content-Length over it is refused now, before a 100 Continue invites the body);
        and for a streaming route or a multipart body to a route taking files, the request
        is taken now, its chunks go to a BodyStream or a MultipartReceiver, and a streaming
        route's handler is dispatched at once."""
        collector = self.collector
        collector.on_headers_complete()
        self.body_limit = self.max_body_size
        length = collector.content_length
        method = self.parser.get_method()
        if length == 0 or (length < 0 and method in _BODILESS):
            return  # no body (a chunked GET body is read whole, as any other)
        route = self._body_route(method, collector.target)
        limit = self.max_body_size if route is None or route.max_body_size is None else route.max_body_size
        if route is None or not (route.streams or route.takes_form):
            if length > limit:
                self._refuse(413, "Content Too Large")
            self.body_limit = limit
            return
        if route.takes_form and route.max_body_size is None:
            limit = UNBOUNDED_BODY  # the upload limits bound it (text fields in memory included)
        if length > limit:
            self._refuse(413, "Content Too Large")
        continue_due = collector.awaiting_continue
        path, query, header_items, header_map = collector.take()
        collector.on_headers_complete()  # what follows the body are trailers, not a head
        request, keep_alive, unusual = self._new_request(path, query, header_items, header_map, b"")
        self.receiving = request
        if unusual is not None:
            request._trailers = unusual
            self.body_limit = self.max_body_size if route.max_body_size is None else route.max_body_size
            return  # an Upgrade: read as any other body (see _received)
        if route.streams:
            self.body_limit = limit
            self.receiver = request._stream = BodyStream(request, self, self.worker.config.stream_buffer_size)
        else:
            try:
                boundary = multipart_boundary(header_map.get("content-type"))
            except FormError as exc:
                self._refuse(exc.status_code, str(exc))
            if boundary is None:  # urlencoded: read whole, it is parsed from memory
                self.body_limit = self.max_body_size if route.max_body_size is None else route.max_body_size
            else:
                self.body_limit = limit
                try:
                    self.receiver = MultipartReceiver(boundary, self.form_limits())
                except FormError as exc:
                    self._refuse(exc.status_code, str(exc))
        if continue_due and not self.busy and not self.pipeline and request.http_version != "1.0":
            collector.answer_continue()
            self.transport.write(CONTINUE)  # type: ignore[union-attr]
        if route.streams:
            self._dispatch(request, keep_alive)

    def _body_route(self, method: bytes, target: bytes) -> typing.Any:
        """The route a head goes to, looked up before the collector hands the head over."""
        if not target.startswith(b"/"):
            return None  # absolute-form or "*": read whole, as any other
        route, _, _ = self.resolve(METHODS.get(method) or method.decode("latin-1"),
                                   decode_component(target.partition(b"?")[0]))
        return route if route is not None and route.receives_body_itself else None

    def form_limits(self) -> FormLimits:
        return FormLimits.from_config(self.worker.config)

    def _received(self) -> None:
        """on_message_complete for a request taken at its head (see _head_complete); the
        connection's reception is idle again already."""
        request, self.receiving = self.receiving, None
        receiver, self.receiver = self.receiver, None
        collector = self.collector
        trailers = collector.take_trailers()
        collector.reset()
        if trailers:
            request._trailers = (request._trailers or []) + trailers
        body = self.body
        self.body, self.body_size, self.body_limit = [], 0, self.max_body_size
        stream = request._stream
        if stream is not None:
            stream.end()  # its handler is running already
            return
        if isinstance(receiver, MultipartReceiver):
            try:
                request._took_form(receiver.finish())
            except FormError as exc:
                self._refuse(exc.status_code, str(exc))
        else:
            request.body = body[0] if len(body) == 1 else b"".join(body)
        keep_alive = self.parser.should_keep_alive()
        if request._trailers is not None and self.parser.should_upgrade():
            self._upgrade(request, keep_alive)
            return
        self._dispatch(request, keep_alive)

    def pause_body(self) -> None:
        """A streaming route's handler is behind (BodyStream): stop reading the socket."""
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_body(self) -> None:
        """It has caught up: read again. Its pause was ours, not the client's, so the body's
        timeouts start over."""
        if self.reading_paused and self.transport is not None and not self.pipeline:
            self.reading_paused = False
            self.last_activity = self.clock()
            self.body_watch = (-1.0, 0.0, 0)
            self.transport.resume_reading()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.worker.loop

    def _body_lost(self) -> None:
        """The client stopped sending (closed, or half-closed) inside a body taken at its head."""
        request, receiver = self.receiving, self.receiver
        self.receiving = self.receiver = None
        self.keep_alive = False
        if request is not None and request._stream is not None:
            request._stream.fail(ClientDisconnect("the client went away while sending the body"))
        elif isinstance(receiver, MultipartReceiver):
            receiver.close()  # its temporary files go now

    def _stream_failed(self, request: Request) -> None:
        """The body of a request whose handler was dispatched at its head went wrong (over
        its limit, malformed framing, too slow, the client gone): the handler hears it from
        request.stream(), its answer is the response, and the connection closes after it."""
        self.receiving = self.receiver = None
        status, detail = self.rejection or (400, "Bad Request")
        request._stream.fail(HTTPException(status, detail))  # type: ignore[union-attr]
        self.keep_alive = False
        if request.responded and self.transport is not None:
            self.transport.close()  # answered already: nothing more to say
