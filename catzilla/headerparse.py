"""The reference implementation of request-head parsing; `catzilla._native` is the fast one.

The server uses the C versions (ext/headers.c). This module defines what they must do,
function for function, and tests/test_headerparse.py feeds both the same random and
adversarial input and demands identical results. Keep the two in step.

- `HeaderCollector` receives httptools' `on_url` / `on_header` callbacks for one request
  head: it validates names and values (RFC 9110 5.1, 5.5), lower-cases names, enforces the
  header-block and body size limits, notes `Content-Length` and `Expect: 100-continue`, and
  `take()` hands over the decoded path, the query string and the headers.
- `parse_query`, `parse_cookies` and `parse_content_type` parse what their names say.
"""
from __future__ import annotations

import typing
from urllib.parse import unquote_to_bytes

from .errors import HeaderError

__all__ = [
    "HeaderCollector", "HeaderError", "Head", "parse_content_type", "parse_cookies",
    "parse_query", "TOKEN_CHARS",
]

# RFC 9110 5.6.2: tchar, the characters of a field name.
TOKEN_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# RFC 9110 5.5: a field value never carries these (they would split or end the field).
FORBIDDEN_IN_VALUE = frozenset(b"\r\n\x00")
OWS = " \t"
_OWS_BYTES = b" \t"
# Bytes of a header line beyond name and value: ": " and CRLF, as the limit counts them.
LINE_OVERHEAD = 4
# RFC 3986 3.2.2: what a reg-name is made of (unreserved, sub-delims, pct-encoded's "%").
REG_NAME_CHARS = frozenset(b"-._~!$&'()*+,;=%0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def valid_authority(value: bytes) -> bool:
    """Host's value (RFC 9110 7.2): IP-literal or reg-name, then an optional ":" and digits.
    Empty is allowed: a target without an authority is sent so."""
    host, rest = value, b""
    if value[:1] == b"[":
        end = value.find(b"]")
        if end < 0 or not (REG_NAME_CHARS | {ord(":")}).issuperset(value[1:end]) or b"%" in value[1:end]:
            return False
        host, rest = value[:end + 1], value[end + 1:]
    else:
        host, colon, port = value.partition(b":")
        rest = colon + port
        if not REG_NAME_CHARS.issuperset(host):
            return False
        for i, byte in enumerate(host):
            if byte == ord("%") and not (len(host) > i + 2 and _HEX.issuperset(host[i + 1:i + 3])):
                return False
    return not rest or (rest[:1] == b":" and rest[1:].isdigit()) or rest == b":"

# (path or None when the target is not origin-form, query string or the whole target,
#  header items in arrival order, header map with repeated fields combined)
Head = tuple["str | None", str, list[tuple[str, str]], dict[str, str]]


def combine_field(mapping: dict[str, str], name: str, value: str) -> None:
    # RFC 9110 5.3: repeated fields combine into a comma-separated list; Cookie is the
    # exception, its pairs are separated by "; " (RFC 9113 8.2.3).
    if name in mapping:
        mapping[name] = f"{mapping[name]}{'; ' if name == 'cookie' else ', '}{value}"
    else:
        mapping[name] = value


def _ascii_lower(text: str) -> str:
    return text.translate(_LOWER)


_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def decode_component(raw: bytes) -> str:
    """Percent-decoding of a path or query component: `%XX` becomes the byte, a `%` that
    starts no valid escape stays, and the bytes are read as UTF-8 (invalid ones replaced)."""
    return unquote_to_bytes(raw).decode("utf-8", "replace")


class HeaderCollector:
    def __init__(self, max_header_size: int, max_body_size: int) -> None:
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.reset()

    def reset(self) -> None:
        self.target = b""
        self.size = 0
        self.content_length = -1
        self.expect_continue = False
        self.headers_complete = False
        self.continue_answered = False
        self.upgrade = False  # an Upgrade field came: take() sends the caller down its cold path
        self._items: list[tuple[str, str]] = []
        self._map: dict[str, str] = {}
        if not hasattr(self, "_trailers"):
            self._trailers: list[tuple[str, str]] | None = None

    def on_url(self, fragment: bytes) -> None:
        if self.size == 0:  # a new message: the last one's trailers are gone
            self._trailers = None
        self.size += len(fragment)
        if self.size > self.max_header_size:
            raise HeaderError(431, "Request Header Fields Too Large")
        self.target += fragment

    def on_header(self, name: bytes, value: bytes) -> None:
        self.size += len(name) + len(value) + LINE_OVERHEAD
        if self.size > self.max_header_size:
            raise HeaderError(431, "Request Header Fields Too Large")
        if not name or not TOKEN_CHARS.issuperset(name):
            raise HeaderError(400, "Invalid header name")
        if not FORBIDDEN_IN_VALUE.isdisjoint(value):
            raise HeaderError(400, "Invalid header value")
        key = _ascii_lower(name.decode("ascii"))
        text = value.strip(_OWS_BYTES).decode("latin-1")
        if self.headers_complete:  # after a chunked body: a trailer, never one of the headers
            self._trailers = (self._trailers or []) + [(key, text)]
            return
        if key == "content-length":
            if self.content_length >= 0:
                raise HeaderError(400, "Duplicate Content-Length")
            if not text.isdigit() or not text.isascii() or len(text) > 18:
                raise HeaderError(400, "Invalid Content-Length")
            self.content_length = int(text)
            if self.content_length > self.max_body_size:
                raise HeaderError(413, "Content Too Large")
        elif key == "expect" and text:  # an empty list expects nothing
            if _ascii_lower(text) != "100-continue":  # the only expectation there is
                raise HeaderError(417, "Expectation Failed")
            self.expect_continue = True
        elif key == "transfer-encoding" and _ascii_lower(text) != "chunked":
            # Bodies are read in full and handed over as sent: only chunked framing, no codings.
            raise HeaderError(501, "Transfer-Encoding other than chunked is not implemented")
        elif key == "host":
            if key in self._map:
                raise HeaderError(400, "More than one Host header")  # RFC 9112 3.2
            if not valid_authority(value.strip(_OWS_BYTES)):
                raise HeaderError(400, "Invalid Host header")
        elif key == "upgrade":
            self.upgrade = True
        self._items.append((key, text))
        combine_field(self._map, key, text)

    def on_headers_complete(self) -> None:
        self.headers_complete = True

    def answer_continue(self) -> None:
        self.continue_answered = True

    @property
    def awaiting_continue(self) -> bool:
        """Expect: 100-continue with a body, head complete, no 100 sent yet (RFC 9110 10.1.1)."""
        return (self.expect_continue and self.headers_complete and not self.continue_answered
                and self.content_length != 0)

    def take(self) -> Head:
        """The collected head; the collector is ready for the next request afterwards."""
        target, items, mapping = self.target, self._items, self._map
        unusual = self.upgrade or self._trailers is not None
        self.reset()
        if target[:1] != b"/" or unusual:
            return None, target.decode("latin-1"), items, mapping
        path, _, query = target.partition(b"?")
        return decode_component(path), query.decode("latin-1"), items, mapping

    def take_request(self, parser: typing.Any, body: bytes,
                     client: typing.Any) -> tuple[typing.Any, bool, bool] | None:
        """The usual head as (Request, keep_alive, forwarded), checked as every request is;
        None (nothing taken) for a head that take() hands to the caller's cold path."""
        if self.target[:1] != b"/" or self.upgrade or self._trailers is not None:
            return None
        from .request import Request  # (request.py imports this module's neighbours)

        mapping = self._map
        forwarded = any(name in mapping for name in ("forwarded", "x-forwarded-for", "x-forwarded-proto"))
        try:
            keep_alive = bool(parser.should_keep_alive())
            if keep_alive and "connection" not in mapping:
                version = "1.1"
            else:
                version = parser.get_http_version()
                if version == "1.0" and keep_alive and "transfer-encoding" in mapping:
                    keep_alive = False
            if version[:1] != "1":
                raise HeaderError(505, "HTTP Version Not Supported")
            if version == "1.1" and "host" not in mapping:
                raise HeaderError(400, "HTTP/1.1 request without a Host header")
            method = parser.get_method().decode("latin-1")
            path, query, items, mapping = self.take()
        finally:
            self.reset()
        return Request(method, path, query, items, body, client, version, mapping), keep_alive, forwarded

    def take_trailers(self) -> list[tuple[str, str]] | None:
        """Fields received after the last chunked body, or None; they are never headers."""
        trailers, self._trailers = self._trailers, None
        return trailers


def _query_bytes(query: str | bytes) -> bytes:
    if isinstance(query, bytes):
        return query
    # A str from the server holds the raw bytes as latin-1; one built by hand may hold
    # any character, and then UTF-8 is what it means.
    return query.encode("latin-1") if query.isascii() or max(query) <= "\xff" else query.encode("utf-8")


def parse_query(query: str | bytes) -> list[tuple[str, str]]:
    """`a=1&b=x+y&a=%C3%A9` -> [("a", "1"), ("b", "x y"), ("a", "é")]; empty fields skipped,
    a field without `=` has the value ""."""
    pairs = []
    for field in _query_bytes(query).split(b"&"):
        if not field:
            continue
        name, _, value = field.partition(b"=")
        pairs.append((decode_component(name.replace(b"+", b" ")), decode_component(value.replace(b"+", b" "))))
    return pairs


def parse_cookies(header: str) -> dict[str, str]:
    """`a=1; b="x y"` -> {"a": "1", "b": "x y"}. The first of repeated names wins: browsers
    send the cookie with the most specific path first (RFC 6265 5.4). Pairs without `=`
    and empty names are skipped."""
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        name = name.strip(OWS)
        if not sep or not name or name in cookies:
            continue
        value = value.strip(OWS)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies[name] = value
    return cookies


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """`Multipart/Form-Data; boundary="a;b"` -> ("multipart/form-data", {"boundary": "a;b"}).

    Parameter names are lower-cased, values unquoted (RFC 9110 5.6.4: quoted-pair `\\x` is
    `x`); a `;` inside quotes does not split; the last of repeated parameters wins."""
    media_type, _, rest = value.partition(";")
    params: dict[str, str] = {}
    position, end = 0, len(rest)
    while position < end:
        # One parameter: name up to "=" or ";", then a token or a quoted string.
        start = position
        while position < end and rest[position] not in "=;":
            position += 1
        name = _ascii_lower(rest[start:position].strip(OWS))
        if position >= end or rest[position] == ";":
            position += 1
            continue
        position += 1  # "="
        while position < end and rest[position] in OWS:
            position += 1
        if position < end and rest[position] == '"':
            position += 1
            chars = []
            while position < end and rest[position] != '"':
                if rest[position] == "\\" and position + 1 < end:
                    position += 1
                chars.append(rest[position])
                position += 1
            text = "".join(chars)
            while position < end and rest[position] != ";":
                position += 1  # anything after the closing quote is ignored
        else:
            start = position
            while position < end and rest[position] != ";":
                position += 1
            text = rest[start:position].strip(OWS)
        position += 1
        if name:
            params[name] = text
    return _ascii_lower(media_type.strip(OWS)), params
