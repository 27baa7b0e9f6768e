"""Response classes and their HTTP/1.1 wire encoding.

A response renders its body once, at construction (in the handler's own context: the thread
pool for `def` handlers), so the event loop only joins prepared bytes and writes them.
"""
from __future__ import annotations

import typing
from http import HTTPStatus

import msgspec
import json

import orjson

from ._native import encode_response
from .headerparse import FORBIDDEN_IN_VALUE, TOKEN_CHARS

__all__ = [
    "Response", "JSONResponse", "PlainTextResponse", "HTMLResponse", "StreamingResponse",
    "status_line", "to_response", "error_response",
]

# RFC 9110 renamed a few reason phrases that Python's HTTPStatus still spells the old way.
_RFC9110_PHRASES = {413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable",
                    422: "Unprocessable Content"}
_STATUS_LINES: dict[int, bytes] = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, _RFC9110_PHRASES.get(s.value, s.phrase).encode("ascii"))
    for s in HTTPStatus if s.value >= 200  # 1xx are interim: never the final response
}


def status_line(status_code: int) -> bytes:
    line = _STATUS_LINES.get(status_code)
    if line is None:
        if not 200 <= status_code <= 999:
            # A 1xx would leave the client waiting for a final response that never comes
            # (RFC 9110 15.2): the handler's bug is answered 500 instead.
            raise ValueError(f"status {status_code} cannot be a final response")
        line = _STATUS_LINES[status_code] = b"HTTP/1.1 %d \r\n" % status_code
    return line


def _encode_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode("latin-1"), str(value).encode("latin-1")
    # A name that is not a token, or a CR, LF or NUL in a value, would let handler-controlled
    # data forge headers or split the response (RFC 9110 5.1, 5.5).
    if not raw_name or not TOKEN_CHARS.issuperset(raw_name):
        raise ValueError(f"response header name {name!r} is not a token")
    if not FORBIDDEN_IN_VALUE.isdisjoint(raw_value):
        raise ValueError(f"response header {name!r} contains CR, LF or NUL")
    return b"%s: %s\r\n" % (raw_name, raw_value)


# Header lines already encoded and checked, by (name, value) as a handler or middleware
# set them: the same few (vary, cache-control, a content-type) recur on every response.
# Bounded, since values may be per request (ids, cookies): beyond it lines are not kept.
_LINES: dict[tuple[str, str], tuple[bytes, bool]] = {}
LINE_CACHE_SIZE = 4096


def _line(name: str, value: str) -> tuple[bytes, bool]:
    """(the encoded line, or b"" for a framing field, which is the server's business; and
    whether it is the content-type)."""
    lowered = name.lower()
    if lowered in ("content-length", "transfer-encoding", "connection"):
        line = b""
    else:
        line = _encode_header(name, value)
    known = line, lowered == "content-type"
    if len(_LINES) < LINE_CACHE_SIZE and type(value) is str:
        _LINES[(name, value)] = known
    return known


class Response:
    """Bytes with a status and headers. `content` may be bytes, str or None."""

    media_type: str | None = None
    charset = "utf-8"
    streaming = False

    def __init__(
        self,
        content: typing.Any = None,
        status_code: int = 200,
        headers: typing.Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)
        self.headers: dict[str, str] = dict(headers) if headers else {}

    def render(self, content: typing.Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        return str(content).encode(self.charset)

    def content_type(self) -> str | None:
        media_type = self.media_type
        if media_type is not None and media_type.startswith("text/") and "charset=" not in media_type:
            return f"{media_type}; charset={self.charset}"
        return media_type

    def encode_headers(self) -> bytes:
        """The header lines this response adds to the common ones (content-type, user headers)."""
        lines = []
        typed = False
        for item in self.headers.items():
            known = _LINES.get(item)
            if known is None:
                known = _line(*item)
            lines.append(known[0])
            typed = typed or known[1]
        if not typed:
            content_type = self.content_type()
            if content_type is not None:
                lines.insert(0, (_LINES.get(("content-type", content_type)) or _line("content-type", content_type))[0])
        return b"".join(lines)

    def encode(self, common: bytes, head_only: bool = False) -> bytes:
        """Status line, `common` (server, date, connection), own headers, framing, body."""
        body = self.body
        status = self.status_code
        if status < 200 or status in (204, 304):
            # RFC 9110 8.6: these never carry content, so no Content-Length either.
            return b"%s%s%s\r\n" % (status_line(status), common, self.encode_headers())
        return encode_response(status_line(status), common, b"", body, self.encode_headers(), head_only)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code} {len(self.body)} bytes>"


_JSON_TYPE = b"content-type: application/json\r\n"


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(
        self,
        content: typing.Any = None,
        status_code: int = 200,
        headers: typing.Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        # Response.__init__ spelled out: this constructor runs once per JSON request.
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        if self._own_render:
            self.body = self.render(content)
        else:
            try:
                self.body = orjson.dumps(content, default=_to_builtins, option=orjson.OPT_NON_STR_KEYS)
            except orjson.JSONEncodeError:
                self.body = _dumps_slowly(content)
        self.headers = dict(headers) if headers else {}

    _own_render = False  # a subclass that overrides render(): __init__ must call it

    def __init_subclass__(cls, **kwargs: typing.Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._own_render = cls.render is not JSONResponse.render

    def render(self, content: typing.Any) -> bytes:
        try:
            return orjson.dumps(content, default=_to_builtins, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:
            return _dumps_slowly(content)

    def encode(self, common: bytes, head_only: bool = False) -> bytes:
        # The hot path of a JSON API: no user headers means no per-header work at all.
        if self.headers or self.media_type != "application/json":
            return super().encode(common, head_only)
        return encode_response(_STATUS_LINES.get(self.status_code) or status_line(self.status_code), common,
                               _JSON_TYPE, self.body, b"", head_only)


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"


ContentStream = typing.Union[
    typing.Iterable[typing.Union[str, bytes]], typing.AsyncIterable[typing.Union[str, bytes]]
]


class StreamingResponse(Response):
    """A body produced piece by piece, sent with chunked transfer coding.

    A synchronous iterator is advanced in the thread pool (it may block); an asynchronous one
    on the event loop.
    """

    streaming = True

    def __init__(
        self,
        content: ContentStream,
        status_code: int = 200,
        headers: typing.Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(None, status_code, headers, media_type)
        self.body_iterator = content

    def encode_start(self, common: bytes, chunked: bool = True) -> bytes:
        """The head; without `chunked` (an HTTP/1.0 client, RFC 9112 6.1) the body is
        delimited by closing the connection instead."""
        return b"%s%s%s%s\r\n" % (
            status_line(self.status_code), common,
            b"transfer-encoding: chunked\r\n" if chunked else b"", self.encode_headers(),
        )

    def encode_chunk(self, chunk: str | bytes, chunked: bool = True) -> bytes:
        if isinstance(chunk, str):
            chunk = chunk.encode(self.charset)
        if not chunk:
            return b""  # an empty chunk would end the body early
        return b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else bytes(chunk)


def _dumps_slowly(content: typing.Any) -> bytes:
    """What orjson refuses but JSON can hold (integers beyond 64 bits): the standard
    library's encoder. Anything JSON cannot hold still raises (a 500)."""
    try:
        return json.dumps(content, default=_to_builtins, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
    except ValueError as exc:  # circular references and the like
        raise TypeError(str(exc)) from None


def _to_builtins(value: typing.Any) -> typing.Any:
    """orjson's fallback: msgspec Structs, sets and anything else msgspec knows."""
    try:
        return msgspec.to_builtins(value)
    except TypeError:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable") from None


def to_response(result: typing.Any) -> Response:
    """A handler's return value as a response (DESIGN.md section 3, "Returns")."""
    if isinstance(result, Response):
        return result
    if isinstance(result, str):
        return PlainTextResponse(result)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(result, media_type="application/octet-stream")
    return JSONResponse(result)  # dict, list, None, Structs, dataclasses, numbers


def error_response(status_code: int, detail: typing.Any,
                   headers: typing.Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code, headers)
