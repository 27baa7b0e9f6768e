"""The in-memory ends of the TestClient's connections, and how it catches the server's
exceptions: what a worker's protocol writes goes to a transport of ours instead of a
socket, and the request goes in as the bytes a client would send."""
from __future__ import annotations

import asyncio
import contextvars
import logging
import typing

import httptools
import httpx

__all__ = ["PeerTransport", "MemoryTransport", "encode_request", "errors_caught", "catch"]

# The exceptions logged as unhandled while one request is handled (see _ErrorCatcher).
errors_caught: contextvars.ContextVar[list[BaseException] | None] = contextvars.ContextVar(
    "catzilla_test_errors", default=None)


class _ErrorCatcher(logging.Handler):
    """Takes the exception off every error record the server logs with a traceback (a
    handler's unhandled exception, a failed exception handler, a broken stream) while a
    test request is handled: the request's context carries the list to put it in, into
    the pool thread or Task that runs its handler."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        caught = errors_caught.get()
        if caught is not None and record.exc_info and isinstance(record.exc_info[1], Exception):
            caught.append(record.exc_info[1])


_catcher = _ErrorCatcher()
_catching = 0  # clients started and not stopped: the catcher stays while any is


def catch(more: int) -> None:
    global _catching
    _catching += more
    logger = logging.getLogger("catzilla")
    if _catching and _catcher not in logger.handlers:
        logger.addHandler(_catcher)
    elif not _catching:
        logger.removeHandler(_catcher)


class PeerTransport(asyncio.Transport):
    """The transport a worker's protocol writes to, as a socket's would look to it."""

    def __init__(self, client: tuple[str, int]) -> None:
        super().__init__()
        self.client = client
        self.closed = False

    def get_extra_info(self, name: str, default: typing.Any = None) -> typing.Any:
        return self.client if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def abort(self) -> None:
        self.close()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class MemoryTransport(PeerTransport):
    """What HttpProtocol writes, parsed as a response as it arrives."""

    def __init__(self, client: tuple[str, int], head_only: bool) -> None:
        super().__init__(client)
        self.head_only = head_only
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.parser = httptools.HttpResponseParser(self)

    # the response parser's callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.head_only and self.status >= 200:
            self._finish()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.status < 200:  # an interim response (100 Continue): the final one follows
            self.headers.clear()
            return
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    # asyncio.Transport
    def write(self, data: bytes) -> None:  # type: ignore[override]
        if not self.done.done():
            self.parser.feed_data(bytes(data))

    def close(self) -> None:
        self.closed = True
        if not self.done.done():  # closed before a whole response (a body cut short)
            self.done.set_exception(httpx.RemoteProtocolError("the server closed the connection mid-response"))


def encode_request(request: httpx.Request) -> bytes:
    """`request` as HTTP/1.1 bytes, its body whole with a Content-Length."""
    body = request.read()
    target = request.url.raw_path or b"/"
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), target)]
    for name, value in request.headers.raw:
        if name.lower() not in (b"content-length", b"transfer-encoding"):
            lines.append(b"%s: %s\r\n" % (name, value))
    if body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(b"content-length: %d\r\n" % len(body))
    lines.append(b"\r\n")
    return b"".join(lines) + body
