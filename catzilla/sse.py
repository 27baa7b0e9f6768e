"""Server-sent events (the WHATWG HTML "text/event-stream" format): `EventSourceResponse`, with
the arguments of sse-starlette's (`from sse_starlette.sse import EventSourceResponse` becomes
`from catzilla.sse import EventSourceResponse`).

The content yields events: a `ServerSentEvent`, a dict of its fields (`data`, `event`, `id`,
`retry`, `comment`), or a str/bytes taken as the data. While the source is quiet, a comment
line goes out every `ping` seconds, so proxies and clients do not drop the connection.
"""
from __future__ import annotations

import asyncio
import typing

from .responses import StreamingResponse

__all__ = ["EventSourceResponse", "ServerSentEvent", "DEFAULT_PING_INTERVAL"]

# Seconds between keep-alive comments on a quiet stream: below the 30-60 s idle timeouts of
# common proxies and load balancers (sse-starlette's default too).
DEFAULT_PING_INTERVAL = 15.0


def _single_line(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"SSE {name} must be a single line: {value!r}")
    return value


class ServerSentEvent:
    """One event. `data` may span lines (each goes out as its own `data:` line)."""

    def __init__(self, data: typing.Any = None, *, event: str | None = None, id: str | int | None = None,
                 retry: int | None = None, comment: str | None = None, sep: str = "\r\n") -> None:
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry
        self.comment = comment
        self.sep = sep

    def encode(self) -> bytes:
        sep = self.sep
        lines = []
        if self.comment is not None:
            lines.extend(f": {line}" for line in str(self.comment).splitlines() or [""])
        if self.id is not None:
            lines.append(f"id: {_single_line('id', str(self.id))}")
        if self.event is not None:
            lines.append(f"event: {_single_line('event', str(self.event))}")
        if self.data is not None:
            text = self.data.decode("utf-8") if isinstance(self.data, bytes) else str(self.data)
            lines.extend(f"data: {line}" for line in text.splitlines() or [""])
        if self.retry is not None:
            if not isinstance(self.retry, int):
                raise TypeError("SSE retry must be an int (milliseconds)")
            lines.append(f"retry: {self.retry}")
        return (sep.join(lines) + sep + sep).encode("utf-8")


def _event(item: typing.Any, sep: str) -> bytes:
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, dict):
        return ServerSentEvent(**item, sep=sep).encode()
    return ServerSentEvent(item, sep=sep).encode()


class EventSourceResponse(StreamingResponse):
    """`EventSourceResponse(content, status_code=200, headers=None, media_type="text/event-stream",
    ping=DEFAULT_PING_INTERVAL, sep="\\r\\n", ping_message_factory=None)`. `ping=0`: no pings."""

    media_type = "text/event-stream"

    def __init__(
        self,
        content: typing.Any,
        status_code: int = 200,
        headers: typing.Any = None,
        media_type: str = "text/event-stream",
        ping: float | None = DEFAULT_PING_INTERVAL,
        sep: str = "\r\n",
        ping_message_factory: typing.Callable[[], ServerSentEvent] | None = None,
        *,
        content_type: str | None = None,
    ) -> None:
        self.sep = sep
        self.ping_interval = ping or 0.0
        self.ping_message_factory = ping_message_factory
        super().__init__(self._events(content), status_code, headers, media_type, content_type=content_type)
        mine = self.headers
        mine.setdefault("cache-control", "no-cache")
        mine.setdefault("x-accel-buffering", "no")  # nginx: pass events on as they come

    def _ping(self) -> bytes:
        if self.ping_message_factory is not None:
            return self.ping_message_factory().encode()
        return ServerSentEvent(comment="ping", sep=self.sep).encode()

    async def _events(self, content: typing.Any) -> typing.AsyncIterator[bytes]:
        """The source's events as bytes, with a ping whenever it stays quiet for the
        interval. A synchronous source is advanced in a thread (it may block)."""
        source = content.__aiter__() if hasattr(content, "__aiter__") else _threaded(iter(content))
        pending: asyncio.Future[typing.Any] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(source.__anext__())
                if self.ping_interval:
                    done, _ = await asyncio.wait((pending,), timeout=self.ping_interval)
                    if not done:
                        yield self._ping()
                        continue
                try:
                    item = await pending
                except StopAsyncIteration:
                    return
                finally:
                    pending = None
                yield _event(item, self.sep)
        finally:
            if pending is not None:
                pending.cancel()
            closing = getattr(source, "aclose", None)
            if closing is not None:
                try:
                    await closing()
                except RuntimeError:  # still running the cancelled step: it ends with it
                    pass


async def _threaded(iterator: typing.Iterator[typing.Any]) -> typing.AsyncIterator[typing.Any]:
    loop = asyncio.get_running_loop()
    done = object()
    while True:
        item = await loop.run_in_executor(None, next, iterator, done)
        if item is done:
            return
        yield item
