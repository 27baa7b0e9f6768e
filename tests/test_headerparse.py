"""The C header parser (catzilla._native) against its reference (catzilla.headerparse).

Both get the same random and adversarial input; they must return the same values or
refuse with the same status.
"""
from __future__ import annotations

import typing

import pytest
from hypothesis import given, settings, strategies as st

from catzilla import _native, headerparse
from catzilla.worker import protocol

MAX_HEADER, MAX_BODY = 512, 1000

# Bytes that make parsers trip: delimiters, escapes, OWS, controls, quotes, high bytes.
TRICKY = b"%+=&;,:\"\\ \t\r\n\x00\x7f\x80\xc3\xa9\xff?/#aAzZ09-_.~"
tricky_bytes = st.lists(st.sampled_from([bytes([b]) for b in TRICKY]) | st.binary(max_size=3), max_size=40).map(b"".join)
hex_escapes = st.builds(lambda a, b: b"%" + a + b, st.sampled_from([b"0", b"4", b"c", b"C", b"e", b"g", b""]),
                        st.sampled_from([b"1", b"3", b"A", b"f", b"z", b""]))
query_bytes = st.lists(tricky_bytes | hex_escapes | st.sampled_from([b"a=1", b"&", b"==", b"+", b"%E2%82%AC"]),
                       max_size=12).map(b"".join)
texts = st.text(alphabet=st.sampled_from(list(" \t;=\"\\,aAZz09-/é€\x00\U0001f600")), max_size=40) | st.text(max_size=30)
token_names = st.text(alphabet=st.sampled_from(list("!#$%&'*+-.^_`|~09azAZ")), min_size=1, max_size=20).map(str.encode)
known_names = st.sampled_from([b"Host", b"host", b"CONTENT-LENGTH", b"Cookie", b"cookie", b"Expect", b"content-type",
                               b"User-Agent", b"X-Forwarded-For", b"Accept", b"Transfer-Encoding",
                               b"Upgrade", b"HOST"])
header_names = known_names | token_names | tricky_bytes
header_values = st.sampled_from([b"0", b"12", b"100-continue", b"100-CONTINUE", b"a=1", b" x ", b"", b"1001",
                                 b"9" * 19, b"+5", b"1 2", b"chunked", b" Chunked ", b"gzip, chunked",
                                 b"a:80", b"[::1]:8000", b"[::1", b"h%41", b"h%4", b"a:", b"a:b", b"<x>",
                                 b"a, b", b"[v1.x]"]) | tricky_bytes


def outcome(call: typing.Callable[[], typing.Any]) -> tuple[str, typing.Any]:
    try:
        return "ok", call()
    except headerparse.HeaderError as exc:
        return "refused", (exc.status, exc.reason)


def collect(cls: type, target_parts: list[bytes], fields: list[tuple[bytes, bytes]],
            trailers: list[tuple[bytes, bytes]] = ()) -> list[typing.Any]:
    """Feed one head through a collector; record every step's outcome and the final state."""
    collector = cls(MAX_HEADER, MAX_BODY)
    steps: list[typing.Any] = []
    for part in target_parts:
        steps.append(outcome(lambda: collector.on_url(part)))
    for name, value in fields:
        steps.append(outcome(lambda: collector.on_header(name, value)))
        steps.append((collector.size, collector.content_length, collector.expect_continue))
    collector.on_headers_complete()
    for name, value in trailers:
        steps.append(outcome(lambda: collector.on_header(name, value)))
    steps.append(outcome(collector.take))
    steps.append(outcome(collector.take_trailers))
    steps.append((collector.size, collector.content_length, collector.expect_continue, collector.target))
    return steps


def test_the_server_uses_the_c_parser() -> None:
    assert _native.HeaderCollector is not headerparse.HeaderCollector
    assert protocol.HeaderCollector is _native.HeaderCollector
    assert _native.HeaderError is headerparse.HeaderError
    assert _native.__file__.endswith((".so", ".pyd"))
    # The reference implementation is for tests only: the server never imports it.
    assert protocol.decode_component is _native.decode_component
    assert protocol.valid_authority is _native.valid_authority
    assert protocol.HeaderError.__module__ == "catzilla.errors"


@settings(max_examples=500, deadline=None)
@given(raw=query_bytes | tricky_bytes)
def test_decode_component_matches_reference(raw: bytes) -> None:
    assert _native.decode_component(raw) == headerparse.decode_component(raw)


@settings(max_examples=500, deadline=None)
@given(value=header_values | st.sampled_from([b"[::1]", b"[::1]:", b"[fe80::1%25eth0]", b"a%zz", b"a%4g:1",
                                              b"host:99999", b":80", b"[]", b"a]", b"[a]b"]))
def test_valid_authority_matches_reference(value: bytes) -> None:
    assert _native.valid_authority(value) is headerparse.valid_authority(value)


@settings(max_examples=400, deadline=None)
@given(target_parts=st.lists(st.sampled_from([b"/", b"/a%20b", b"?", b"q=1", b"%zz", b"%C3", b"%A9", b"http://h/x",
                                              b"*", b"\xff", b"/" * 200]) | tricky_bytes, max_size=6),
       fields=st.lists(st.tuples(header_names, header_values), max_size=10),
       trailers=st.lists(st.tuples(header_names, header_values), max_size=3))
def test_collector_matches_reference(target_parts: list[bytes], fields: list[tuple[bytes, bytes]],
                                     trailers: list[tuple[bytes, bytes]]) -> None:
    assert collect(_native.HeaderCollector, target_parts, fields, trailers) \
        == collect(headerparse.HeaderCollector, target_parts, fields, trailers)


@settings(max_examples=500, deadline=None)
@given(query=query_bytes)
def test_parse_query_matches_reference(query: bytes) -> None:
    expected = headerparse.parse_query(query)
    assert _native.parse_query(query) == expected
    # The server hands the query over as latin-1 text; that means the same bytes.
    assert _native.parse_query(query.decode("latin-1")) == expected == headerparse.parse_query(query.decode("latin-1"))


@settings(max_examples=300, deadline=None)
@given(query=st.text(max_size=30))
def test_parse_query_on_any_text(query: str) -> None:
    assert _native.parse_query(query) == headerparse.parse_query(query)


@settings(max_examples=500, deadline=None)
@given(header=texts)
def test_parse_cookies_matches_reference(header: str) -> None:
    assert _native.parse_cookies(header) == headerparse.parse_cookies(header)


@settings(max_examples=500, deadline=None)
@given(value=texts)
def test_parse_content_type_matches_reference(value: str) -> None:
    assert _native.parse_content_type(value) == headerparse.parse_content_type(value)


ADVERSARIAL_TYPES = [
    "", ";", "=", '"', "a/b; x=\"", 'a/b; x="\\', 'a/b; x="a\\"b"; y=2', "A/B;;; =1; X = \" q \" tail; x=last",
    "text/plain; charset", "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
    "\t Text/HTML \t; Charset=UTF-8", "x/y; é=€; \U0001f600=\"\U0001f600\"",
]


@pytest.mark.parametrize("value", ADVERSARIAL_TYPES)
def test_parse_content_type_adversarial(value: str) -> None:
    assert _native.parse_content_type(value) == headerparse.parse_content_type(value)


def test_a_second_host_header_is_refused() -> None:
    for impl in (_native, headerparse):
        collector = impl.HeaderCollector(MAX_HEADER, MAX_BODY)
        collector.on_header(b"Host", b"a.example")
        with pytest.raises(headerparse.HeaderError) as refused:
            collector.on_header(b"HOST", b"b.example")
        assert refused.value.status == 400


def test_known_answers() -> None:
    """Both implementations give the answers a user expects (not only the same answers)."""
    for impl in (_native, headerparse):
        assert impl.parse_query("a=1&b=x+y&&c&d=%C3%A9&e=%zz&a=2") == [
            ("a", "1"), ("b", "x y"), ("c", ""), ("d", "é"), ("e", "%zz"), ("a", "2")]
        assert impl.parse_cookies('session=abc; theme="dark"; session=shadowed; flag') == {"session": "abc", "theme": "dark"}
        assert impl.parse_content_type('Multipart/Form-Data; Boundary="a;b"; charset=utf-8') == (
            "multipart/form-data", {"boundary": "a;b", "charset": "utf-8"})
        collector = impl.HeaderCollector(MAX_HEADER, MAX_BODY)
        collector.on_url(b"/caf%C3%A9/x")
        collector.on_url(b"?q=1")
        collector.on_header(b"Host", b"example.com")
        collector.on_header(b"Accept", b"a")
        collector.on_header(b"ACCEPT", b"b ")
        collector.on_header(b"Cookie", b"a=1")
        collector.on_header(b"cookie", b"b=2")
        collector.on_header(b"Content-Length", b"10")
        assert collector.content_length == 10
        assert collector.take() == (
            "/café/x", "q=1",
            [("host", "example.com"), ("accept", "a"), ("accept", "b"), ("cookie", "a=1"), ("cookie", "b=2"),
             ("content-length", "10")],
            {"host": "example.com", "accept": "a, b", "cookie": "a=1; b=2", "content-length": "10"})
        assert collector.content_length == -1 and collector.size == 0


@pytest.mark.parametrize("name, value, status", [
    (b"Bad Header", b"x", 400), (b"X(y)", b"1", 400), (b"", b"x", 400), (b"X", b"a\x00b", 400),
    (b"X", b"a\rb", 400), (b"X", b"a\nb", 400), (b"Content-Length", b"1001", 413),
    (b"Content-Length", b"-1", 400), (b"Content-Length", b"9" * 19, 400), (b"X", b"v" * 600, 431),
    (b"Expect", b"bogus", 417), (b"Transfer-Encoding", b"gzip, chunked", 501),
    (b"Transfer-Encoding", b"identity", 501),
])
def test_refusals(name: bytes, value: bytes, status: int) -> None:
    for impl in (_native, headerparse):
        collector = impl.HeaderCollector(MAX_HEADER, MAX_BODY)
        with pytest.raises(headerparse.HeaderError) as refused:
            collector.on_header(name, value)
        assert refused.value.status == status
