"""The `Request` a handler receives as its first argument, and its body.

A body is read whole before the handler runs, except on routes that stream it (their
handler takes it chunk by chunk from `request.stream()`, see `BodyStream`) and on routes
that take files or form fields (the server parses a multipart body as it arrives, see
catzilla.forms). Its accessors serve three kinds of users at once: the seed's and Catzilla
0.2.3's `request.body.decode()` and `request.json()`, and Starlette's (aiohttp's) `await
request.body()`, `await request.json()`, `await request.form()`.
"""
from __future__ import annotations

import asyncio
import collections
import typing

import orjson

from ._native import UNREAD, RequestFields, parse_cookies, set_request_class
from .background_tasks import after_response
from .datastructures import URL, Address, Headers, QueryParams, ReadyBytes, State, ready
from .errors import HTTPException
from .forms import FormData, FormLimits, MultipartReceiver, multipart_boundary, parse_form, upload_dicts

__all__ = ["Request", "Body", "BodyStream", "ClientDisconnect", "InvalidJSON"]

_running_loop = asyncio._get_running_loop  # None in a pool thread (a `def` handler)


class ClientDisconnect(HTTPException):
    """The client went away before it had sent the whole body (Starlette's name). Left
    uncaught, it is logged as nginx does, status 499, with no traceback: nobody is there to
    read an answer, and a client hanging up is no bug of the handler's."""

    def __init__(self, detail: str = "Client Closed Request") -> None:
        super().__init__(499, detail)


class InvalidJSON(HTTPException, ValueError):
    """`request.json()` on a body that is not JSON: a 400 unless the handler catches it (a
    ValueError, as orjson's and json's errors are)."""

    def __init__(self, error: str) -> None:
        super().__init__(400, f"Request body is not valid JSON: {error}")


class Body(ReadyBytes):
    """`request.body`: the body's bytes (`request.body.decode()`, as the seed writes), which
    may also be called and awaited (`await request.body()`, as Starlette writes)."""

    __slots__ = ()

    def __call__(self) -> "Body":
        return self

    def __await__(self) -> typing.Generator[typing.Any, None, "Body"]:
        return self
        yield  # pragma: no cover


EMPTY_BODY = Body()


class _StreamedBody(Body):
    """`request.body` on a streaming route before its stream is read: empty bytes, but
    `await request.body()` reads the stream whole, as Starlette's does."""

    request: "Request"

    @classmethod
    def of(cls, request: "Request") -> "_StreamedBody":
        body = cls()
        body.request = request
        return body

    def __call__(self) -> typing.Any:  # type: ignore[override]
        return self._read()

    async def _read(self) -> Body:
        request = self.request
        chunks = [chunk async for chunk in request.stream()]
        request.body = b"".join(chunks)
        return request.body


class FlowControl(typing.Protocol):
    """What a BodyStream needs of the connection its chunks come from."""

    loop: asyncio.AbstractEventLoop

    def pause_body(self) -> None: ...  # stop reading the socket

    def resume_body(self) -> None: ...  # read it again

    def form_limits(self) -> FormLimits: ...  # the server's limits on multipart forms


class BodyStream:
    """The body of a request whose route streams it, chunk by chunk as the server receives
    them (it calls `feed`, `end` and `fail` on the loop). Flow control: once `high_water`
    bytes wait for a handler that is behind, the server stops reading the socket (the
    client's TCP window closes and it waits); when the handler has taken them, reading
    resumes. After the response is sent, whatever is left of the body is dropped."""

    def __init__(self, request: "Request", control: FlowControl, high_water: int) -> None:
        self.request = request
        self.control = control
        self.high_water = high_water
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.ended = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.taken = False  # stream() was called: a second call has nothing to give

    # -- the server's side ------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        if self.request.responded:
            return  # the handler has answered without reading it all: nobody wants it
        self.chunks.append(chunk)
        self.buffered += len(chunk)
        if self.buffered >= self.high_water and not self.paused:
            self.paused = True
            self.control.pause_body()
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self.ended and self.error is None:
            self.error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the handler's side -----------------------------------------------------------------

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        chunks = self.chunks
        while True:
            if chunks:
                chunk = chunks.popleft()
                self.buffered -= len(chunk)
                if self.paused and not chunks:  # caught up: let the client send again
                    self.paused = False
                    self.control.resume_body()
                yield chunk
                continue
            if self.error is not None:
                raise self.error
            if self.ended:
                yield b""  # Starlette ends every stream with an empty chunk
                return
            # Nothing to give: make sure the socket is read (paused by us, or while the
            # request waited its turn behind another).
            self.paused = False
            self.control.resume_body()
            self.waiter = self.control.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None


class _Chunks:
    """What `request.stream()` returns: `async for` on the loop; plain `for` in a `def`
    handler, each chunk fetched from the loop."""

    __slots__ = ("source", "loop")

    def __init__(self, source: typing.AsyncIterable[bytes], loop: asyncio.AbstractEventLoop | None) -> None:
        self.source = source
        self.loop = loop

    def __aiter__(self) -> typing.AsyncIterator[bytes]:
        return self.source.__aiter__()

    def __iter__(self) -> typing.Iterator[bytes]:
        iterator = self.source.__aiter__()
        if self.loop is None:  # a body that is already whole: no loop needed
            while True:
                try:
                    iterator.__anext__().send(None)
                except StopIteration as stop:
                    yield stop.value
                except StopAsyncIteration:
                    return
        if _running_loop() is not None:
            raise RuntimeError("iterate request.stream() with `async for` in an async handler")
        while True:
            try:
                yield asyncio.run_coroutine_threadsafe(_next(iterator), self.loop).result()
            except StopAsyncIteration:
                return


async def _next(iterator: typing.AsyncIterator[bytes]) -> bytes:
    return await iterator.__anext__()


async def _whole(body: bytes) -> typing.AsyncIterator[bytes]:
    if body:
        yield body
    yield b""


_UNREAD = UNREAD  # request.json() has not decoded the body yet


class Request(RequestFields):
    """One HTTP request (received whole, but for a streaming route's body). Derived views
    (query, cookies, form) are built on first use and cached.

    Its fields are a C struct (ext/request.c): the server makes a request in one C call
    (HeaderCollector.take_request) without running __init__, which is for requests built
    by hand."""

    __slots__ = ()

    # Set once per worker by Catzilla.startup()/shutdown() (a process serves one app): read
    # through the class, so a request pays nothing for them, whether or not it looks.
    app: typing.Any = None  # the application serving this request
    lifespan_state: "typing.Mapping[str, typing.Any] | None" = None  # what the lifespan yielded
    # The prefix a proxy serves the app under (Catzilla(root_path=), else --root-path).
    root_path: str = ""

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str = "",
        headers: "list[tuple[str, str]] | typing.Mapping[str, str] | None" = None,
        body: bytes = b"",
        client: Address | None = None,
        http_version: str = "1.1",
        header_map: dict[str, str] | None = None,
    ) -> None:
        # The server passes the collector's items and map (ext/headers.c); the Headers
        # object around them is made only if the handler looks.
        self.method = method
        self.path = path
        self.query_string = query_string
        self.path_params: dict[str, typing.Any] = {}
        self._header_items = headers
        self._header_map = header_map
        self._headers: Headers | None = None
        if headers is not None and type(headers) is not list:
            self._adopt_headers(headers)
        self._body = body
        self._json: typing.Any = _UNREAD
        self._stream: BodyStream | None = None  # set by the server for a streaming route
        self.client = client
        self.http_version = http_version
        self._query_params: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._form: FormData | None = None
        self._state: State | None = None
        self.background: list[typing.Any] | None = None  # filled by schedule_task()
        self.responded = False
        self._trailers: list[tuple[str, str]] | None = None  # set by the server when any came
        # http or https (ws or wss on a WebSocket): the connection's, or a trusted proxy's.
        self.scheme = "http"

    def _adopt_headers(self, headers: "Headers | typing.Mapping[str, str]") -> None:
        """A Request built by hand (tests, adapters) with a Headers object or a mapping."""
        if isinstance(headers, Headers):
            self._headers = headers
        else:
            self._header_items = list(headers.items())

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self._header_items, self._header_map)
        return headers

    @property
    def trailers(self) -> Headers:
        """Fields sent after a chunked body (RFC 9112 7.1.2). Never merged into `headers`:
        they arrive after whatever checked the head (a proxy, a middleware) let it through."""
        return Headers(self._trailers or [])

    @property
    def query_params(self) -> QueryParams:
        params = self._query_params
        if params is None:
            params = self._query_params = QueryParams.from_string(self.query_string)
        return params

    @property
    def cookies(self) -> dict[str, str]:
        cookies = self._cookies
        if cookies is None:
            header = self.headers.get("cookie")
            cookies = parse_cookies(header) if header else {}
            self._cookies = cookies
        return cookies

    @property
    def state(self) -> State:
        state = self._state
        if state is None:
            # Starlette's rule: each request starts from a shallow copy of the lifespan's
            # state (its own attributes, the same objects), made only if the handler looks.
            state = self._state = State(self.lifespan_state)
        return state

    @state.setter
    def state(self, value: "State | typing.Mapping[str, typing.Any]") -> None:
        """Catzilla 0.2.3's apps write `request.state = getattr(request, "state", {})` and
        then use it as a dict: the same State back is kept, a mapping becomes a State."""
        self._state = value if isinstance(value, State) else State(value)

    def get_header(self, name: str, default: str | None = None) -> str | None:
        """The header `name` (any case), or `default` (Catzilla 0.2.3's method). The
        cheapest look-up there is: one dict look-up in the server's map, no Headers made."""
        mapping = self._header_map
        if mapping is None:  # built by hand
            return self.headers.get(name, default)
        value = mapping.get(name)
        return value if value is not None else mapping.get(name.lower(), default)

    @property
    def context(self) -> dict[str, typing.Any]:
        """Catzilla 0.2.3's per-request dict, where its middleware leaves things for the
        handler (`request.context["user"] = ...`); kept in request.state, made on first use."""
        data = self.state._data  # noqa: SLF001 - a key no attribute name can collide with
        context = data.get("catzilla.context")
        if context is None:
            context = data["catzilla.context"] = {}
        return context

    @context.setter
    def context(self, value: dict[str, typing.Any]) -> None:
        self.state._data["catzilla.context"] = value  # noqa: SLF001

    @property
    def url(self) -> URL:
        """`http://host/path?query` as a str, with Starlette's parts: `.path`, `.query`,
        `.scheme`, `.netloc`, `.hostname`, `.port`. The scheme is the connection's (or a
        trusted proxy's), and the path has the root path a proxy took off (Starlette's)."""
        return URL.build(self.scheme, self.headers.get("host", ""), self.root_path + self.path, self.query_string)

    @property
    def base_url(self) -> URL:
        """Where the app is served: scheme, host and root path, ending in `/`."""
        return URL.build(self.scheme, self.headers.get("host", ""), self.root_path + "/", "")

    @property
    def scope(self) -> dict[str, typing.Any]:
        """The ASGI scope's keys, made on demand (ASGI 3: `path` includes `root_path`)."""
        return {
            "type": "websocket" if self.scheme in ("ws", "wss") else "http",
            "http_version": self.http_version, "method": self.method, "scheme": self.scheme,
            "path": self.root_path + self.path, "raw_path": (self.root_path + self.path).encode(),
            "root_path": self.root_path, "query_string": self.query_string.encode("latin-1"),
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.multi_items()],
            "client": tuple(self.client) if self.client is not None else None,
            "path_params": self.path_params, "app": self.app,
        }

    @property
    def client_ip(self) -> str | None:
        """The client's address (Catzilla 0.2.3's name): `request.client.host`."""
        client = self.client
        return client[0] if client is not None else None

    # -- the body -----------------------------------------------------------------------------

    @property
    def body(self) -> Body:
        """The body's bytes; also `await request.body()`. On a streaming route it is empty
        until `await request.body()` has read the stream whole (see `stream()`); on a route
        that takes files it is empty: the server parsed it as it arrived (see `form()`)."""
        body = self._body
        if type(body) is not Body:
            stream = self._stream
            if stream is not None and not stream.taken:
                return _StreamedBody.of(self)
            body = self._body = Body(body) if body else EMPTY_BODY
        return body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value
        self._json = _UNREAD

    def stream(self) -> _Chunks:
        """The body as chunks: `async for chunk in request.stream()` (plain `for` in a
        `def` handler). On a route declared with `stream=True`, the chunks as they arrive
        (ClientDisconnect if the client goes away first); elsewhere the whole body at once.
        The last chunk is always b"" (as Starlette's)."""
        stream = self._stream
        if stream is None:
            return _Chunks(_whole(self._body), None)
        if stream.taken:
            raise RuntimeError("the request body stream has been consumed already")
        stream.taken = True
        return _Chunks(stream, stream.control.loop)

    def json(self) -> typing.Any:
        """The body decoded as JSON; `{}` for an empty body (as Catzilla 0.2.3 answers).
        A body that is not JSON raises InvalidJSON (a ValueError, answered 400). In an
        async handler the value may also be awaited: `await request.json()`."""
        value = self._json
        if value is _UNREAD:
            body = self._body
            if not body:
                value = {}
            else:
                try:  # (orjson takes no bytes subclass: a Body is read through a memoryview)
                    value = orjson.loads(body if type(body) is bytes else memoryview(body))
                except orjson.JSONDecodeError as exc:
                    raise InvalidJSON(str(exc)) from None
            self._json = value
        return ready(value) if _running_loop() is not None else value

    def form(self) -> FormData:
        """The body as a form (urlencoded or multipart); also `await request.form()`. A
        body that does not parse raises FormError (an HTTPException: 400, 413 over a limit)."""
        form = self._form
        if form is None:
            stream = self._stream
            if stream is not None and not stream.taken:
                return self._read_form(stream)  # type: ignore[return-value]
            form = self._took_form(parse_form(self.headers.get("content-type"), self._body))
        return form

    @property
    def files(self) -> dict[str, dict[str, typing.Any]]:
        """Catzilla 0.2.3's uploads: field name -> {"filename", "content_type", "size",
        "content" (the bytes), ...}; {} when the body has none. `form()` is Starlette's way.
        On a streaming route, `await request.form()` first (the body is not read here)."""
        form = self._form
        if form is None:
            form = self.form()
            if not isinstance(form, FormData):  # the coroutine of a streaming route
                form.close()  # type: ignore[attr-defined]
                raise RuntimeError("on a streaming route, await request.form() before request.files")
        return upload_dicts(form)

    async def _read_form(self, stream: BodyStream) -> FormData:
        """`await request.form()` on a streaming route: a multipart body goes through the
        parser chunk by chunk as it arrives, uploads spooled, under the server's limits."""
        content_type = self.headers.get("content-type")
        boundary = multipart_boundary(content_type)
        if boundary is None:
            self.body = await self.body()
            return self._took_form(parse_form(content_type, self._body))
        receiver = MultipartReceiver(boundary, stream.control.form_limits())
        try:
            async for chunk in self.stream():
                receiver.feed(chunk)
        except BaseException:
            receiver.close()
            raise
        return self._took_form(receiver.finish())

    def _took_form(self, form: FormData) -> FormData:
        """Keep the parsed form; its uploads (temporary files past the spool size) are closed
        once the response is sent, as Starlette does, not whenever the request is freed."""
        self._form = form
        if form.files:
            after_response(self, form.close)
        return form

    def text(self) -> str:
        """The body as text (UTF-8, invalid bytes replaced); awaitable in an async handler."""
        text = self._body.decode("utf-8", errors="replace")
        return ready(text) if _running_loop() is not None else text

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


set_request_class(Request)
