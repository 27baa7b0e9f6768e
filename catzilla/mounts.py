"""ASGI applications inside a Catzilla app: `app.mount(path, asgi_app)` serves one (a
Starlette or FastAPI sub-app) under a path, and a pure ASGI middleware class given to
`app.add_middleware` wraps routes as our own middleware does.

Both stand on one conversion each way: our Request as an ASGI HTTP scope and `receive`,
and what an ASGI app sends as our Response. The request is fully received before a route
runs, so `receive` hands over the whole body at once, then waits until the response is
complete and says `http.disconnect` (as a server does when the client leaves). A response
whose first body message says `more_body` becomes a StreamingResponse that streams as the
app sends; otherwise a plain one. Repeated response headers (Set-Cookie) are kept.

This is the framework side of the ASGI bridge: it calls ASGI apps and needs no server.
Serving a Catzilla app *from* an ASGI server is catzilla.asgi's job (it runs handlers in
the worker's thread pool, so it sits with the worker).
"""
from __future__ import annotations

import asyncio
import typing
from urllib.parse import quote

from .request import Request
from .responses import Response, StreamingResponse

__all__ = ["Mount", "ASGIMiddleware", "asgi_scope", "asgi_response", "send_response", "middleware_instance"]

Scope = typing.MutableMapping[str, typing.Any]
Message = typing.MutableMapping[str, typing.Any]
ASGIApp = typing.Callable[[Scope, typing.Callable[[], typing.Awaitable[Message]],
                           typing.Callable[[Message], typing.Awaitable[None]]], typing.Awaitable[None]]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}
# Framing is the server's business: whatever an ASGI app says about it is dropped.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})


def asgi_scope(request: Request, root_path: str = "") -> dict[str, typing.Any]:
    """The ASGI HTTP scope of `request`. `path` is the whole path and `root_path` the part
    an outer app has claimed (the ASGI spec's and Starlette's reading)."""
    client = request.client
    host = request.headers.get("host", "")
    name, _, port = host.rpartition(":") if host.rpartition(":")[2].isdigit() else (host, "", "")
    return {
        "type": "http", "asgi": ASGI_VERSION, "http_version": request.http_version,
        "method": request.method, "scheme": getattr(request, "scheme", "http"),
        "path": request.path, "raw_path": quote(request.path, safe="/:@!$&'()*+,;=~").encode("ascii"),
        "query_string": request.query_string.encode("latin-1"), "root_path": root_path,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.multi_items()],
        "client": (client.host, client.port) if client is not None else None,
        "server": (name, int(port)) if port else (host or None, None) if host else None,
        "state": dict(Request.lifespan_state or {}),
        "extensions": {},
    }


def _receiver(body: bytes, finished: asyncio.Event) -> typing.Callable[[], typing.Awaitable[Message]]:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    return receive


class ASGIResponse(Response):
    """A response an ASGI app sent: its header lines, repeats and order kept, are the
    response's own raw_headers (the content type among them, if it sent one)."""

    media_type = None


class ASGIStreamingResponse(StreamingResponse):
    media_type = None  # not text/plain: only what the app sent


def _with_raw(response: typing.Any, status: int, headers: list[tuple[bytes, bytes]]) -> typing.Any:
    response.status_code = status
    response.raw_headers = headers
    return response


async def asgi_response(app: ASGIApp, scope: Scope, body: bytes) -> Response:
    """Call `app` and make what it sends our Response (or raise what it raised)."""
    finished = asyncio.Event()
    messages: asyncio.Queue[Message | None] = asyncio.Queue()

    async def send(message: Message) -> None:
        await messages.put(message)

    async def run() -> None:
        try:
            await app(scope, _receiver(body, finished), send)
        finally:
            await messages.put(None)

    task = asyncio.ensure_future(run())
    start = await messages.get()
    if start is None or start.get("type") != "http.response.start":
        finished.set()
        await task  # raises what the app raised
        raise RuntimeError(f"ASGI app {app!r} returned without sending a response")
    status, headers = start["status"], [(bytes(k), bytes(v)) for k, v in start.get("headers", [])]
    first = await messages.get()
    if first is None or not first.get("more_body", False):
        finished.set()
        await task
        content = b"" if first is None else bytes(first.get("body", b""))
        return _with_raw(ASGIResponse(content), status, headers)

    async def chunks() -> typing.AsyncIterator[bytes]:
        message: Message | None = first
        try:
            while message is not None:
                if message.get("type") == "http.response.body":
                    yield bytes(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
                message = await messages.get()
        finally:
            finished.set()
            if not task.done():
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    return _with_raw(ASGIStreamingResponse(chunks()), status, headers)


# content-type header lines by value: a few recur on every response.
_CONTENT_TYPES: dict[str, tuple[bytes, bytes]] = {}


def response_headers(response: Response) -> list[tuple[bytes, bytes]]:
    """The header lines of `response` for an ASGI server (names lower-cased, framing fields
    left to the server), with its content type."""
    raw = response.raw_headers
    content_type = response.content_type
    if not raw:  # the usual response: its content type alone
        if content_type is None:
            return []
        line = _CONTENT_TYPES.get(content_type)
        if line is None:
            line = (b"content-type", content_type.encode("latin-1"))
            if len(_CONTENT_TYPES) < 64:
                _CONTENT_TYPES[content_type] = line
        return [line]
    headers = []
    for name, value in raw:
        name = (name if isinstance(name, bytes) else str(name).encode("latin-1")).lower()
        if name not in _FRAMING:
            headers.append((name, value if isinstance(value, bytes) else str(value).encode("latin-1")))
    if content_type is not None and all(name != b"content-type" for name, _ in headers):
        headers.insert(0, (b"content-type", content_type.encode("latin-1")))
    return headers


async def send_response(response: Response, send: typing.Callable[[Message], typing.Awaitable[None]],
                        head_only: bool = False,
                        pool_run: typing.Callable[..., typing.Awaitable[typing.Any]] | None = None) -> None:
    """`response` as ASGI messages. A sync body iterator is advanced by `pool_run` (it may
    block), or on the loop without one."""
    headers = response_headers(response)
    if not response.streaming:
        status = response.status_code
        if not (status < 200 or status in (204, 304)):
            headers.append((b"content-length", str(len(response.body)).encode("ascii")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head_only else response.body})
        return
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    if not head_only:
        charset = response.charset
        iterator = response.body_iterator  # type: ignore[attr-defined]
        if hasattr(iterator, "__aiter__"):
            async for chunk in iterator:
                await send({"type": "http.response.body", "more_body": True,
                            "body": chunk.encode(charset) if isinstance(chunk, str) else bytes(chunk)})
        else:
            iterator, done = iter(iterator), object()
            while True:
                chunk = await pool_run(next, iterator, done) if pool_run is not None else next(iterator, done)
                if chunk is done:
                    break
                await send({"type": "http.response.body", "more_body": True,
                            "body": chunk.encode(charset) if isinstance(chunk, str) else bytes(chunk)})
    await send({"type": "http.response.body", "body": b""})


class Mount:
    """`app.mount(path, asgi_app)`: `handle` answers every method at `path` and below (not
    in the app's OpenAPI document: the mounted app documents itself)."""

    def __init__(self, path: str, app: ASGIApp, name: str | None = None) -> None:
        self.path = path.rstrip("/")
        self.app = app
        self.name = name
        self.__name__ = name or f"mount_{self.path.strip('/').replace('/', '_') or 'root'}"

    async def handle(self, request: Request) -> Response:
        """The routes' endpoint (a bound method: its annotations resolve as a function's)."""
        root_path = getattr(request, "root_path", "") + self.path
        return await asgi_response(self.app, asgi_scope(request, root_path), request.body)

    handle.include_in_schema = False  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"Mount({self.path!r}, {self.app!r})"


# Where a route's call_next and request travel through a pure ASGI middleware: in its scope.
_NEXT = "catzilla.call_next"


class ASGIMiddleware:
    """A pure ASGI middleware class (`__init__(app, **options)`, `__call__(scope, receive,
    send)`) as route middleware: built once around an inner ASGI app that goes on to the
    route's `call_next`. Changes the middleware makes to the scope's method, path, query or
    headers reach the handler; what it sends becomes the response."""

    def __init__(self, cls: type, *args: typing.Any, **options: typing.Any) -> None:
        self.cls = cls
        self.asgi = cls(self._inner, *args, **options)

    async def dispatch(self, request: Request, call_next: typing.Callable[[Request], typing.Awaitable[Response]]) -> Response:
        scope = asgi_scope(request, getattr(request, "root_path", ""))
        scope[_NEXT] = (request, call_next, scope["headers"])
        return await asgi_response(self.asgi, scope, request.body)

    async def _inner(self, scope: Scope, receive: typing.Callable[[], typing.Awaitable[Message]],
                     send: typing.Callable[[Message], typing.Awaitable[None]]) -> None:
        original, call_next, headers = scope[_NEXT]
        request = original
        query = scope.get("query_string", b"").decode("latin-1")
        if (scope["method"] != request.method or scope["path"] != request.path
                or query != request.query_string or scope["headers"] != headers):
            request = Request(scope["method"], scope["path"], query,
                              [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
                              original.body, original.client, original.http_version)
            request.path_params, request._state = original.path_params, original._state
        try:
            response = await call_next(request)
        finally:
            if request.background:  # scheduled on the copy: run after the server's response
                original.background = (original.background or []) + request.background
        # The whole body even for HEAD: the server leaves it out when it writes the answer.
        await send_response(response, send)

    def __repr__(self) -> str:
        return f"ASGIMiddleware({self.cls.__name__})"


def middleware_instance(cls: type, app: typing.Any, args: tuple[typing.Any, ...],
                        options: typing.Mapping[str, typing.Any]) -> typing.Any:
    """`cls(app, *args, **options)`, or for a pure ASGI middleware class (no `dispatch`) its
    adapter."""
    if hasattr(cls, "dispatch"):
        return cls(app, *args, **options)
    return ASGIMiddleware(cls, *args, **options)
