"""Response classes and their HTTP/1.1 wire encoding.

A response renders its body once, at construction (in the handler's own context: the thread
pool for `def` handlers), so the event loop only joins prepared bytes and writes them.
"""
from __future__ import annotations

import datetime
import json
import typing
import urllib.parse
from http import HTTPStatus

import msgspec
import orjson

from ._native import encode_response, register_encoding, register_json_response, register_responses
from .cookies import set_cookie_value
from .headerparse import FORBIDDEN_IN_VALUE, TOKEN_CHARS
from .response_headers import MutableHeaders, RawHeaders, headers_view, raw_pairs

__all__ = [
    "Response", "JSONResponse", "PlainTextResponse", "HTMLResponse", "StreamingResponse",
    "RedirectResponse", "FileResponse", "MutableHeaders", "status_line", "to_response",
    "error_response",
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


def _encode_header(raw_name: bytes, raw_value: bytes) -> bytes:
    # A name that is not a token, or a CR, LF or NUL in a value, would let handler-controlled
    # data forge headers or split the response (RFC 9110 5.1, 5.5).
    if not raw_name or not TOKEN_CHARS.issuperset(raw_name):
        raise ValueError(f"response header name {raw_name!r} is not a token")
    if not FORBIDDEN_IN_VALUE.isdisjoint(raw_value):
        raise ValueError(f"response header {raw_name!r} contains CR, LF or NUL")
    return b"%s: %s\r\n" % (raw_name, raw_value)


# Header lines already encoded and checked, by raw (name, value) pair as a handler or
# middleware set them: the same few (vary, cache-control, a content-type) recur on every
# response. Bounded, since values may be per request (ids, cookies): beyond it lines are not kept.
_LINES: dict[tuple[bytes, bytes], tuple[bytes, bool]] = {}
LINE_CACHE_SIZE = 4096
_FRAMING = (b"content-length", b"transfer-encoding", b"connection")


def _line(pair: tuple[typing.Any, typing.Any]) -> tuple[bytes, bool]:
    """(the encoded line, or b"" for a framing field, which is the server's business; and
    whether it is the content-type)."""
    name, value = pair
    # Pairs put straight into raw_headers may be str (the view always stores bytes).
    raw_name = name if type(name) is bytes else str(name).encode("latin-1")
    raw_value = value if type(value) is bytes else str(value).encode("latin-1")
    lowered = raw_name.lower()
    line = b"" if lowered in _FRAMING else _encode_header(raw_name, raw_value)
    known = line, lowered == b"content-type"
    if len(_LINES) < LINE_CACHE_SIZE:
        _LINES[(raw_name, raw_value)] = known
    return known


def encode_pairs(pairs: RawHeaders) -> tuple[list[bytes], bool]:
    """The checked header lines of raw pairs, and whether one of them is the content-type."""
    lines = []
    typed = False
    for pair in pairs:
        known = _LINES.get(pair)
        if known is None:
            known = _line(pair)
        lines.append(known[0])
        typed = typed or known[1]
    return lines, typed


def _content_type_line(content_type: str) -> bytes:
    pair = (b"content-type", content_type.encode("latin-1"))
    return (_LINES.get(pair) or _line(pair))[0]


class Response:
    """Bytes with a status and headers. `content` (or Catzilla 0.2.3's `body`) may be bytes,
    str or None; `media_type` and `content_type` are two names for the same thing.

    Headers are `raw_headers`, a list of (name, value) byte pairs, so a field can repeat;
    `headers` is a case-insensitive view of it (Starlette's MutableHeaders)."""

    media_type: str | None = None
    charset = "utf-8"
    # Catzilla 0.2.3's `content_type=` names the header's whole value: sent as given, where
    # Starlette's `media_type=` gets a charset added to text/* (see `content_type`).
    exact_type = False
    streaming = False
    sends_file = False  # the worker sends a file with sendfile(2) (see FileResponse)

    def __init__(
        self,
        content: typing.Any = None,
        status_code: int = 200,
        headers: typing.Any = None,
        media_type: str | None = None,
        *,
        content_type: str | None = None,
        body: typing.Any = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
            self.exact_type = False
        elif content_type is not None:
            self.media_type = content_type
            self.exact_type = True
        self.body = self.render(body if content is None else content)
        self.raw_headers: RawHeaders = raw_pairs(headers) if headers else []

    def render(self, content: typing.Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        return str(content).encode(self.charset)

    # -- headers ----------------------------------------------------------------------------

    headers = headers_view  # MutableHeaders over raw_headers; assigning replaces them

    def set_header(self, name: str, value: str) -> None:
        """Catzilla 0.2.3: set one field (names are lower-cased and stripped, as there)."""
        self.headers[name.strip().lower()] = str(value).strip()

    def get_header(self, name: str, default: str | None = None) -> str | None:
        """Catzilla 0.2.3: the field's (first) value, or `default`."""
        return self.headers.get(name.strip(), default)

    @property
    def content_type(self) -> str | None:
        """The Content-Type sent: the media type, with a charset for text/* (Starlette's), or
        exactly what Catzilla 0.2.3's `content_type=` gave."""
        media_type = self.media_type
        if (media_type is not None and not self.exact_type and media_type.startswith("text/")
                and "charset=" not in media_type):
            return f"{media_type}; charset={self.charset}"
        return media_type

    @content_type.setter
    def content_type(self, value: str | None) -> None:
        self.media_type = value
        self.exact_type = True

    def set_cookie(
        self,
        key: str | None = None,
        value: str = "",
        max_age: int | None = None,
        expires: datetime.datetime | str | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
        partitioned: bool = False,
        *,
        name: str | None = None,
    ) -> None:
        """Add a Set-Cookie field (Starlette's arguments; `name=` is Catzilla 0.2.3's `key`).
        Each call adds one more field: two cookies are two Set-Cookie lines."""
        key = key if key is not None else name
        if key is None:
            raise TypeError("set_cookie() needs the cookie's key")
        cookie = set_cookie_value(key, value, max_age, expires, path, domain, secure, httponly,
                                  samesite, partitioned)
        self.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))

    def delete_cookie(
        self,
        key: str | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
        *,
        name: str | None = None,
    ) -> None:
        """Tell the client to drop a cookie: the same name, path and domain, already expired."""
        self.set_cookie(key, "", 0, 0, path, domain, secure, httponly, samesite, name=name)

    # -- wire encoding ----------------------------------------------------------------------

    def encode_headers(self) -> bytes:
        """The header lines this response adds to the common ones (content-type, user headers)."""
        lines, typed = encode_pairs(self.raw_headers)
        if not typed:
            content_type = self.content_type
            if content_type is not None:
                lines.insert(0, _content_type_line(content_type))
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
        headers: typing.Any = None,
        media_type: str | None = None,
        *,
        content_type: str | None = None,
        body: typing.Any = None,
    ) -> None:
        # Response.__init__ spelled out: this constructor runs once per JSON request.
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
            self.exact_type = False
        elif content_type is not None:
            self.media_type = content_type
            self.exact_type = True
        if body is not None and content is None:
            content = body
        # (`type(self) is JSONResponse` first: a class attribute read through an instance is
        # a slow, unspecialised look-up, and JSONResponse itself renders with orjson.)
        if type(self) is not JSONResponse and self._own_render:
            self.body = self.render(content)
        else:
            try:
                self.body = orjson.dumps(content, default=_to_builtins, option=orjson.OPT_NON_STR_KEYS)
            except orjson.JSONEncodeError:
                self.body = _dumps_slowly(content)
        self.raw_headers = raw_pairs(headers) if headers else []

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
        raw = self.raw_headers
        if self.media_type != "application/json" or (raw and (self.status_code < 200 or self.status_code in (204, 304))):
            return super().encode(common, head_only)
        if raw:  # a hook's or middleware's fields (CORS...): Response.encode's steps, inlined
            lines, typed = encode_pairs(raw)
            return encode_response(_STATUS_LINES.get(self.status_code) or status_line(self.status_code), common,
                                   b"" if typed else _JSON_TYPE, self.body, b"".join(lines), head_only)
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
    # A stream that names no type is text/plain, sent as is (Catzilla 0.2.3's documented default).
    media_type = "text/plain"
    exact_type = True

    def __init__(
        self,
        content: ContentStream,
        status_code: int = 200,
        headers: typing.Any = None,
        media_type: str | None = None,
        *,
        content_type: str | None = None,
    ) -> None:
        super().__init__(None, status_code, headers, media_type, content_type=content_type)
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


# What a redirect's URL keeps unquoted (Starlette's set): everything else is percent-encoded.
REDIRECT_SAFE = ":/%#?=@[]!$&'()*+,;"


class RedirectResponse(Response):
    """An empty response sending the client to `url` (307 by default, as Starlette: the method
    and body are kept). The URL is percent-quoted where it is not already (Starlette's set of
    safe characters), so a handler cannot put a line break into Location."""

    def __init__(self, url: typing.Any, status_code: int = 307, headers: typing.Any = None,
                 *, media_type: str | None = None, content_type: str | None = None) -> None:
        super().__init__(b"", status_code, headers, media_type, content_type=content_type)
        self.headers["location"] = urllib.parse.quote(str(url), safe=REDIRECT_SAFE)


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
                   headers: typing.Any = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code, headers)


# ext/jsonresponse.c makes JSON responses without a Python frame: the constructor and
# to_response() above stay as the references tests/test_jsonresponse_native.py compares with.
_json_init_reference = JSONResponse.__init__
_to_response_reference = to_response
JSONResponse.__init__, to_response = register_json_response(  # type: ignore[method-assign]
    JSONResponse, Response, PlainTextResponse, orjson.dumps, _to_builtins, orjson.OPT_NON_STR_KEYS,
    orjson.JSONEncodeError, _dumps_slowly, raw_pairs)
# What ext/inline.c encodes without a Python frame (the usual JSONResponse) and falls back on.
register_responses(Response, JSONResponse, _STATUS_LINES, to_response)
# What ext/chain.c encodes without a Python frame (a JSONResponse with header pairs too).
register_encoding(JSONResponse, _STATUS_LINES, _LINES, _line)

from .fileresponse import FileResponse  # noqa: E402  (it builds on Response, above)
