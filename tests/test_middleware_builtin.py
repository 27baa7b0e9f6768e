"""The built-in middleware (catzilla.middleware: CORS, GZip, TrustedHost, RequestID) of
tests/apps/mw_builtin_app.py: through the TestClient (the real protocol in memory), and on
a real server with raw sockets where the exact bytes matter (nothing added to a request,
compressed bytes and chunks as they arrive)."""
from __future__ import annotations

import gzip
import socket
import zlib

import httpx
import pytest

from catzilla.middleware import (CORSMiddleware, GZipMiddleware, RequestIDMiddleware,
                                 TrustedHostMiddleware)
from conftest import app_client, load_test_app, read_response, run_server

ALLOWED = "https://allowed.example"
BIG_TEXT = load_test_app("mw_builtin_app").BIG_TEXT


@pytest.fixture(scope="module")
def server():
    with run_server("mw_builtin_app:app") as srv:
        yield srv


@pytest.fixture(scope="module")
def wire(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def client():
    with app_client("mw_builtin_app:app", base_url="http://127.0.0.1") as c:  # a trusted host
        yield c


@pytest.fixture(scope="module")
def cred_client():
    with app_client("mw_builtin_app:cred_app", base_url="http://127.0.0.1") as c:
        yield c


def raw_request(server, target: str, headers: dict[str, str] | None = None,
                method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One request over a raw socket: nothing is added (no Accept-Encoding, exact Host)."""
    fields = {"Host": "127.0.0.1", **(headers or {})}
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    with server.connect() as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n")
        return read_response(sock)


class ChunkedReader:
    """Reads a chunked response piece by piece, to see each chunk as it arrives."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed mid-response")
        self.buffer += data

    def head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split(" ")[1]), headers

    def chunk(self) -> bytes:
        """The next chunk's data; b"" at the last chunk."""
        while b"\r\n" not in self.buffer:
            self._fill()
        size_line, _, self.buffer = self.buffer.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(self.buffer) < size + 2:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size + 2:]
        return data


def raw_request_chunked(server, target, headers):
    with server.connect() as sock:
        head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n")
        reader = ChunkedReader(sock)
        status, response_headers = reader.head()
        body = b""
        while data := reader.chunk():
            body += data
        return status, response_headers, body


# -- CORS ----------------------------------------------------------------------------------

def preflight(client, path="/sync", origin=ALLOWED, method="POST", headers=None):
    extra = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        extra["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=extra)


def test_cors_preflight_allowed(client):
    r = preflight(client, headers="X-Token, content-type")
    assert r.status_code == 200 and r.text == "OK"
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert r.headers["access-control-allow-methods"] == "GET, POST"
    assert "x-token" in r.headers["access-control-allow-headers"].lower()
    assert r.headers["access-control-max-age"] == "300"
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in r.headers


@pytest.mark.parametrize("kwargs, failure", [
    ({"origin": "https://evil.example"}, "Disallowed CORS origin"),
    ({"method": "DELETE"}, "Disallowed CORS method"),
    ({"headers": "X-Token, X-Secret"}, "Disallowed CORS headers"),
    ({"origin": "https://evil.example", "method": "PUT", "headers": "X-Other"},
     "Disallowed CORS origin, method, headers"),
])
def test_cors_preflight_denied(client, kwargs, failure):
    r = preflight(client, **kwargs)
    assert r.status_code == 400
    assert r.text == failure
    if "origin" in kwargs:
        assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("path", ["/sync", "/big", "/no-such-route"])
def test_cors_preflight_answered_before_routing(client, path):
    """/sync and /big have no OPTIONS route (a plain OPTIONS gets 405); a preflight is the
    middleware's to answer, wherever it goes."""
    r = preflight(client, path=path, method="GET")
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ALLOWED


def test_plain_options_is_not_a_preflight(client):
    r = client.options("/sync", headers={"Origin": ALLOWED})  # no Access-Control-Request-Method
    assert r.status_code == 405
    assert r.headers["access-control-allow-origin"] == ALLOWED  # still an allowed CORS answer


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_cors_simple_request(client, path):
    r = client.get(path, headers={"Origin": ALLOWED})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert r.headers["access-control-expose-headers"] == "X-Request-ID"
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in r.headers
    assert r.json()["kind"] == path[1:]


def test_cors_simple_request_refused_origin_and_no_origin(client):
    for headers in ({"Origin": "https://evil.example"}, {}):
        r = client.get("/sync", headers=headers)
        assert r.status_code == 200  # the browser, not the server, withholds it
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-expose-headers" not in r.headers
        # The answer depends on Origin, so caches must key on it even here.
        assert r.headers["vary"] == "Origin"


def test_cors_post_simple_request(client):
    r = client.post("/items", headers={"Origin": ALLOWED})
    assert r.status_code == 200 and r.json() == {"created": True}
    assert r.headers["access-control-allow-origin"] == ALLOWED


def test_cors_credentials_preflight_echoes_requested_values(cred_client):
    c = cred_client
    r = c.options("/sync", headers={"Origin": "https://any.example",
                                    "Access-Control-Request-Method": "PURGE",
                                    "Access-Control-Request-Headers": "X-A, X-B"})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "https://any.example"  # never "*"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "PURGE" in [m.strip() for m in r.headers["access-control-allow-methods"].split(",")]
    assert r.headers["access-control-allow-headers"] == "x-a, x-b"
    assert "*" not in r.headers["access-control-allow-methods"]
    assert r.headers["vary"] == "Origin"


def test_cors_credentials_simple_request(cred_client):
    c = cred_client
    r = c.get("/async", headers={"Origin": "https://any.example", "Cookie": "session=1"})
    plain = c.get("/async")
    assert r.headers["access-control-allow-origin"] == "https://any.example"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in plain.headers
    assert plain.headers["vary"] == "Origin"


# -- GZip ----------------------------------------------------------------------------------

def test_gzip_big_body(server):
    status, headers, body = raw_request(server, "/big", {"Accept-Encoding": "gzip, br"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in headers["vary"] and "Origin" in headers["vary"]
    assert int(headers["content-length"]) == len(body) < len(BIG_TEXT) // 4
    assert gzip.decompress(body).decode() == BIG_TEXT


def test_gzip_through_httpx(client):
    r = client.get("/big")  # httpx asks for gzip and decodes it
    assert r.headers["content-encoding"] == "gzip"
    assert r.text == BIG_TEXT


def test_gzip_head_matches_get(server):
    _, get_headers, _ = raw_request(server, "/big", {"Accept-Encoding": "gzip"})
    with server.connect() as sock:
        sock.sendall(b"HEAD /big HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
    head = data.decode("latin-1").lower()
    assert "content-encoding: gzip" in head
    assert f"content-length: {get_headers['content-length']}" in head


def test_gzip_small_body_not_compressed(server):
    status, headers, body = raw_request(server, "/small", {"Accept-Encoding": "gzip"})
    assert status == 200 and body == b"small body"
    assert "content-encoding" not in headers
    assert "Accept-Encoding" not in headers.get("vary", "")


@pytest.mark.parametrize("accept", [None, "identity", "br", "gzip;q=0", "gzip;q=0, *"])
def test_gzip_not_accepted(server, accept):
    status, headers, body = raw_request(server, "/big", {} if accept is None else {"Accept-Encoding": accept})
    assert status == 200
    assert "content-encoding" not in headers
    assert body.decode() == BIG_TEXT


@pytest.mark.parametrize("accept", ["GZIP", "deflate, gzip;q=0.5", "*", "x-gzip"])
def test_gzip_accepted_spellings(server, accept):
    _, headers, body = raw_request(server, "/big", {"Accept-Encoding": accept})
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body).decode() == BIG_TEXT


def test_gzip_already_encoded_left_alone(server):
    _, headers, body = raw_request(server, "/encoded", {"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body).decode() == BIG_TEXT  # compressed once, not twice


# What the app's streams send after their first piece (tests/apps/mw_builtin_app.py).
REST = {"/stream": lambda i: f"piece {i}: {'x' * 40}\n", "/sync-stream": lambda i: f"sync piece {i}\n"}


@pytest.mark.parametrize("path, first", [("/stream", b"first piece\n"),
                                         ("/sync-stream", b"first sync piece\n")])
def test_gzip_stream_chunks_arrive_as_sent(server, wire, path, first):
    wire.get("/rearm")
    with server.connect(timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n".encode())
        reader = ChunkedReader(sock)
        status, headers = reader.head()
        assert status == 200
        assert headers["content-encoding"] == "gzip"
        assert headers["transfer-encoding"] == "chunked"
        assert "content-length" not in headers
        assert "Accept-Encoding" in headers["vary"]
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        # The handler is now blocked until /release: its first piece must already be here,
        # whole and decodable (a compressor holding it back would time this out).
        assert decompressor.decompress(reader.chunk()) == first
        assert wire.get("/release").status_code == 200
        text = first
        while True:
            data = reader.chunk()
            if not data:
                break
            text += decompressor.decompress(data)
        assert decompressor.eof and not decompressor.unused_data
    assert text.decode() == first.decode() + "".join(REST[path](i) for i in range(50))


def test_gzip_skips_event_stream(server):
    status, headers, body = raw_request_chunked(server, "/events", {"Accept-Encoding": "gzip"})
    assert status == 200
    assert "content-encoding" not in headers
    assert body.decode() == "".join(f"data: event {i} {'y' * 40}\n\n" for i in range(30))


# -- TrustedHost -----------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:9999", "api.example.com", "API.Example.COM:80"])
def test_trusted_host_allowed(server, host):
    status, _, _ = raw_request(server, "/small", {"Host": host})
    assert status == 200


@pytest.mark.parametrize("host", ["evil.com", "example.com", "example.com.evil.com", "notexample.com"])
def test_trusted_host_denied(server, host):
    status, headers, body = raw_request(server, "/small", {"Host": host})
    assert status == 400 and body == b"Invalid host header"
    assert "x-request-id" not in headers  # refused outside every other middleware


def test_trusted_host_www_redirect(server):
    status, headers, _ = raw_request(server, "/a%20path?x=1", {"Host": "site.com:8080"})
    assert status == 307
    assert headers["location"] == "//www.site.com:8080/a%20path?x=1"


# -- RequestID -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_request_id_echoed(client, path):
    r = client.get(path, headers={"X-Request-ID": "trace-abc.123"})
    assert r.headers["x-request-id"] == "trace-abc.123"
    assert r.json()["request_id"] == "trace-abc.123"  # seen by the handler


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_request_id_generated(client, path):
    first, second = client.get(path), client.get(path)
    for r in (first, second):
        rid = r.headers["x-request-id"]
        assert len(rid) == 32 and int(rid, 16) >= 0
        assert r.json()["request_id"] == rid
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("value", ["x" * 201, "caf\u00e9", "tab\there"])
def test_request_id_invalid_replaced(server, value):
    status, headers, body = raw_request(
        server, "/sync", {"X-Request-ID": value.encode("utf-8").decode("latin-1")})
    assert status == 200
    rid = headers["x-request-id"]
    assert len(rid) == 32 and rid != value
    assert f'"request_id":"{rid}"'.encode() in body


def test_request_id_longest_valid_kept(client):
    value = "a" * 200
    assert client.get("/sync", headers={"X-Request-ID": value}).headers["x-request-id"] == value


def test_preflight_answered_outside_request_id(client):
    # The preflight is answered by CORS, outside RequestID: no id, nothing reached a route.
    r = preflight(client, method="GET")
    assert "x-request-id" not in r.headers


# -- options are checked when the middleware is built ----------------------------------------

@pytest.mark.parametrize("cls, options", [
    (CORSMiddleware, {"allow_origins": "https://a.example"}),
    (CORSMiddleware, {"allow_methods": ["GET", 5]}),
    (CORSMiddleware, {"allow_headers": ["bad header"]}),
    (CORSMiddleware, {"max_age": -1}),
    (CORSMiddleware, {"allow_credentials": "yes"}),
    (CORSMiddleware, {"allow_origin": ["*"]}),
    (GZipMiddleware, {"compresslevel": 10}),
    (GZipMiddleware, {"minimum_size": "500"}),
    (GZipMiddleware, {"level": 5}),
    (TrustedHostMiddleware, {"allowed_hosts": ["a.*.com"]}),
    (TrustedHostMiddleware, {"allowed_hosts": ["*example.com"]}),
    (TrustedHostMiddleware, {"allowed_hosts": "example.com"}),
    (RequestIDMiddleware, {"header_name": "X Request"}),
    (RequestIDMiddleware, {"header": "X-Trace"}),
])
def test_invalid_options_raise(cls, options):
    with pytest.raises((TypeError, ValueError)):
        cls(None, **options)


def test_starlette_import_paths():
    from catzilla.middleware.cors import CORSMiddleware as C
    from catzilla.middleware.gzip import GZipMiddleware as G
    from catzilla.middleware.trustedhost import TrustedHostMiddleware as T
    assert (C, G, T) == (CORSMiddleware, GZipMiddleware, TrustedHostMiddleware)
