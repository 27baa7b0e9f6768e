"""Micro-benchmark: one realistic browser request head through httptools and our parser.

Compares the C collector and parsers (catzilla._native, what the server runs) with the
pure-Python reference (catzilla.headerparse) on a 12-header Chrome request: parsing the
head, then what a typical handler reads (a header, the cookies, the query parameters).

    python loadtests/micro_headers.py            # prints µs per request and the ratio
"""
from __future__ import annotations

import statistics
import sys
import timeit

from http.cookies import SimpleCookie
from urllib.parse import unquote_plus

import httptools

from catzilla import _native, headerparse

REQUEST = (
    b"GET /search/items?q=shoes+red&page=2&sort=price%3Aasc HTTP/1.1\r\n"
    b"Host: shop.example.com\r\n"
    b"Connection: keep-alive\r\n"
    b"sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
    b"sec-ch-ua-mobile: ?0\r\n"
    b"sec-ch-ua-platform: \"Linux\"\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
    b"Cookie: session=8f3a2c1d9e; theme=dark; cart=\"a1,b2\"; _ga=GA1.2.123.456\r\n"
    b"\r\n"
)
assert REQUEST.count(b"\r\n") - 2 == 12


class Sink:
    """The parts of HttpProtocol that matter here: the collector's callbacks and a request."""

    def __init__(self, impl) -> None:
        self.impl = impl
        self.head = impl.HeaderCollector(16384, 1 << 24)
        self.on_url = self.head.on_url
        self.on_header = self.head.on_header
        self.parser = httptools.HttpRequestParser(self)
        self.seen = None

    def on_message_complete(self) -> None:
        path, query, items, mapping = self.head.take()
        # What a handler typically reads.
        self.seen = (mapping.get("user-agent"), self.impl.parse_cookies(mapping["cookie"]),
                     self.impl.parse_query(query))


class Before:
    """What the server did per request before the C parser (commit d00b4fd): Python
    callbacks appending raw pairs, a lower-cased map built on first access, the stdlib's
    SimpleCookie and unquote_plus. No validation of names or values at all."""

    class HeaderCollector:
        def __init__(self, max_header_size: int, max_body_size: int) -> None:
            self.max_header_size = max_header_size
            self.max_body_size = max_body_size
            self.url, self.headers, self.size, self.content_length = b"", [], 0, -1

        def on_url(self, url: bytes) -> None:
            self.url += url
            self.size += len(url)
            if self.size > self.max_header_size:
                raise ValueError(431)

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))
            self.size += len(name) + len(value) + 4
            if self.size > self.max_header_size:
                raise ValueError(431)
            if len(name) == 14 and name.lower() == b"content-length":
                self.content_length = int(value)

        def take(self):
            path, _, query = self.url.partition(b"?")
            mapping: dict[str, str] = {}
            for name, value in self.headers:
                key, text = name.decode("latin-1").lower(), value.decode("latin-1")
                mapping[key] = f"{mapping[key]}, {text}" if key in mapping else text
            result = path.decode("latin-1"), query.decode("latin-1"), self.headers, mapping
            self.url, self.headers, self.size, self.content_length = b"", [], 0, -1
            return result

    @staticmethod
    def parse_cookies(header: str) -> dict[str, str]:
        jar = SimpleCookie()
        jar.load(header)
        return {name: morsel.value for name, morsel in jar.items()}

    @staticmethod
    def parse_query(query: str) -> list[tuple[str, str]]:
        pairs = []
        for field in query.split("&"):
            if field:
                name, _, value = field.partition("=")
                pairs.append((unquote_plus(name), unquote_plus(value)))
        return pairs


def per_request_us(impl, number: int = 20000, repeat: int = 7) -> float:
    sink = Sink(impl)
    feed = sink.parser.feed_data
    times = timeit.repeat(lambda: feed(REQUEST), number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def main() -> None:
    python_sink, c_sink = Sink(headerparse), Sink(_native)
    python_sink.parser.feed_data(REQUEST)
    c_sink.parser.feed_data(REQUEST)
    assert python_sink.seen == c_sink.seen, "the two implementations disagree"
    before_us = per_request_us(Before)
    python_us = per_request_us(headerparse)
    c_us = per_request_us(_native)
    print(f"before (Python callbacks, no validation): {before_us:6.2f} µs per request")
    print(f"python reference (headerparse.py):        {python_us:6.2f} µs per request")
    print(f"C (_native, what the server runs):        {c_us:6.2f} µs per request")
    print(f"C vs before: {before_us / c_us:.1f}x faster; C vs reference: {python_us / c_us:.1f}x faster"
          " (medians of 7 runs; httptools' own parsing included in all three)")
    sys.exit(0 if c_us < before_us else 1)


if __name__ == "__main__":
    main()
