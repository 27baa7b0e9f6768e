"""The Request the server makes in one C call (HeaderCollector.take_request, ext/request.c)
against its reference (catzilla.headerparse), and the single-field look-ups.

Both collectors get the same head and the same parser answers (method, version,
keep-alive); they must make the same Request, or refuse with the same status.
"""
from __future__ import annotations

import typing

import httptools
import pytest
from hypothesis import given, settings, strategies as st

from catzilla import _native, headerparse
from catzilla.datastructures import Address, Headers
from catzilla.request import Request

MAX_HEADER, MAX_BODY = 1024, 1000
FIELDS = ("method", "path", "query_string", "path_params", "body", "client", "http_version",
          "scheme", "background", "responded", "_trailers", "_stream", "_headers")


class Parser:
    """What take_request asks of httptools' parser."""

    def __init__(self, method: bytes, version: str, keep_alive: bool) -> None:
        self.method, self.version, self.keep_alive = method, version, keep_alive

    def get_method(self) -> bytes:
        return self.method

    def get_http_version(self) -> str:
        return self.version

    def should_keep_alive(self) -> bool:
        return self.keep_alive


def view(request: Request) -> dict[str, typing.Any]:
    seen = {name: getattr(request, name) for name in FIELDS}
    seen["headers"] = request.headers.multi_items()
    seen["map"] = dict(request.headers)
    seen["json_unread"] = request._json is _native.UNREAD
    return seen


def take(cls: type, target: bytes, fields: list[tuple[bytes, bytes]], parser: Parser) -> typing.Any:
    collector = cls(MAX_HEADER, MAX_BODY)
    try:
        collector.on_url(target)
        for name, value in fields:
            collector.on_header(name, value)
        collector.on_headers_complete()
        taken = collector.take_request(parser, b"body", Address("192.0.2.1", 5))
    except headerparse.HeaderError as exc:
        return "refused", exc.status, exc.reason, collector.size
    if taken is None:
        return "cold", collector.take()[0]
    request, keep_alive, forwarded = taken
    return view(request), keep_alive, forwarded, collector.size, collector.awaiting_continue


names = st.sampled_from([b"Host", b"host", b"HOST", b"Connection", b"connection", b"Transfer-Encoding",
                         b"Cookie", b"cookie", b"X-Forwarded-For", b"Forwarded", b"x-forwarded-proto",
                         b"Upgrade", b"Origin", b"X-Custom", b"Accept", b"Expect", b"Content-Length"])
values = st.sampled_from([b"a", b"a:80", b"close", b"keep-alive", b"chunked", b"x=1", b" y=2 ", b"\xe9t\xe9",
                          b"100-continue", b"0", b"12", b"", b"a\r\n b", b"https://o.example", b"1.2.3.4"])
targets = st.sampled_from([b"/", b"/json", b"/a%20b?q=1&r=%41", b"/caf%C3%A9", b"*", b"http://h/x", b"/x?"])


@settings(max_examples=400, deadline=None)
@given(target=targets, fields=st.lists(st.tuples(names, values), max_size=8),
       method=st.sampled_from([b"GET", b"POST", b"HEAD", b"PURGE", b"OPTIONS"]),
       version=st.sampled_from(["1.1", "1.0", "0.9", "2.0"]), keep_alive=st.booleans())
def test_take_request_matches_reference(target: bytes, fields: list[tuple[bytes, bytes]], method: bytes,
                                        version: str, keep_alive: bool) -> None:
    parser = Parser(method, version, keep_alive)
    assert take(_native.HeaderCollector, target, fields, parser) == \
        take(headerparse.HeaderCollector, target, fields, parser)


def test_take_request_with_httptools() -> None:
    """The real parser's answers: method, version, keep-alive, repeated fields, case."""
    collector = _native.HeaderCollector(MAX_HEADER, MAX_BODY)
    taken: list[typing.Any] = []

    class Protocol:
        on_url = collector.on_url
        on_header = collector.on_header

        def on_message_complete(self) -> None:
            taken.append(collector.take_request(parser, b"", None))

    parser = httptools.HttpRequestParser(Protocol())
    parser.feed_data(b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"
                     b"POST /p HTTP/1.0\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
    (first, alive1, fwd1), (second, alive2, _) = taken
    assert (first.method, first.path, first.query_string, first.http_version, alive1, fwd1) == \
        ("GET", "/a", "b=1", "1.1", True, False)
    assert first.headers.getlist("x-a") == ["1", "2"] and first.headers["X-A"] == "1, 2"
    assert first.get_header("cookie") == "a=1; b=2" and first.cookies == {"a": "1", "b": "2"}
    assert (second.method, second.http_version, alive2) == ("POST", "1.0", True)


def test_take_request_leaves_an_unusual_head_to_take() -> None:
    collector = _native.HeaderCollector(MAX_HEADER, MAX_BODY)
    collector.on_url(b"/ws")
    collector.on_header(b"Upgrade", b"websocket")
    assert collector.take_request(Parser(b"GET", "1.1", True), b"", None) is None
    path, query, items, _ = collector.take()
    assert (path, query, items) == (None, "/ws", [("upgrade", "websocket")])


def test_a_request_built_by_hand_has_every_field() -> None:
    request = Request("GET", "/x")
    assert (request.query_string, request.body, request.client, request.http_version, request.scheme) == \
        ("", b"", None, "1.1", "http")
    assert request.path_params == {} and request.background is None and request.responded is False
    assert request.headers.get("host") is None and request.get_header("Host", "-") == "-"
    bare = Request.__new__(Request)  # no __init__: the C defaults
    assert (bare.method, bare.path, bare.scheme, bare._json) == ("", "", "http", _native.UNREAD)
    with pytest.raises(AttributeError):
        request.not_a_field = 1  # type: ignore[attr-defined]


def test_a_subclass_adds_its_own_slots() -> None:
    class Tagged(Request):
        __slots__ = ("tag",)

    tagged = Tagged("POST", "/t", headers={"X-Tag": "a"})
    tagged.tag = "t"
    assert (tagged.tag, tagged.method, tagged.headers["x-tag"]) == ("t", "POST", "a")


@pytest.mark.parametrize("items", [
    [("origin", "https://a.example"), ("vary", "x"), ("vary", "y")],
    [("x-latin", "\xe9t\xe9"), ("cookie", "a=1"), ("cookie", "b=2")],
    [],
])
@pytest.mark.parametrize("name", ["origin", "Origin", "VARY", "vary", "x-latin", "cookie", "missing"])
def test_single_field_lookups_agree_with_the_mapping(items: list[tuple[str, str]], name: str) -> None:
    mapping: dict[str, str] = {}
    for key, value in items:
        headerparse.combine_field(mapping, key, value)
    served = Request("GET", "/", "", list(items), header_map=mapping)  # as the server makes it
    by_hand = Request("GET", "/", "", list(items))  # the map derived on first use
    expected = mapping.get(name.lower(), "absent")
    for request in (served, by_hand):
        assert request.get_header(name, "absent") == expected
        assert request.headers.get(name, "absent") == expected
        assert (name in request.headers) == (name.lower() in mapping)
        if name.lower() in mapping:
            assert request.headers[name] == expected
        else:
            with pytest.raises(KeyError):
                request.headers[name]
    assert Headers(items).get(name, "absent") == expected
