"""The worker's HTTP/1.1 server over raw sockets: keep-alive, pipelining, HEAD, chunked
bodies, 100-continue, HTTP/1.0, limits, timeouts, bad input, graceful stop.

App: tests/apps/protocol_app.py.
"""
from __future__ import annotations

import email.utils
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from conftest import run_server

MAX_HEADER = 4096
MAX_BODY = 1024
TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture(scope="module")
def server():
    """Default timeouts (keep-alive 5 s, header 10 s), small size limits. (A short graceful
    timeout only so that a connection left hanging by a failure cannot stall the teardown.)"""
    with run_server("protocol_app:app", "--max-header-size", str(MAX_HEADER),
                    "--max-body-size", str(MAX_BODY), "--graceful-timeout", "3") as s:
        yield s


@pytest.fixture(scope="module")
def fast_timeouts():
    """One-second keep-alive and header timeouts."""
    with run_server("protocol_app:app", "--keep-alive-timeout", "1", "--header-timeout", "1") as s:
        yield s


@pytest.fixture(scope="module")
def worker_pid(server):
    return httpx.get(server.url + "/pid", timeout=TIMEOUT).json()["pid"]


# -- a tiny HTTP/1.1 client over a raw socket -----------------------------------------------

class Resp:
    def __init__(self, version: str, status: int, reason: str, headers: list[tuple[str, str]],
                 body: bytes) -> None:
        self.version, self.status, self.reason, self.header_list, self.body = \
            version, status, reason, headers, body

    def header(self, name: str) -> str | None:
        values = self.headers_named(name)
        return values[0] if values else None

    def headers_named(self, name: str) -> list[str]:
        return [v for k, v in self.header_list if k.lower() == name.lower()]

    def json(self):
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"<Resp {self.status} {self.header_list} {self.body[:200]!r}>"


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"connection closed; unparsed bytes: {self.buf!r}")
        self.buf += data

    def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_head_block(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head + b"\r\n\r\n"

    def read_response(self, head_only: bool = False) -> Resp:
        head = self.read_head_block().decode("latin-1")
        lines = head[:-4].split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        resp = Resp(version, int(status), reason, headers, b"")
        if head_only or resp.status in (100, 204, 304):
            return resp
        length = resp.header("content-length")
        if length is not None:
            resp.body = self.read_exactly(int(length))
        elif (resp.header("transfer-encoding") or "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                chunk = self.read_exactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
            resp.body = body
        else:  # delimited by the close
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def closed_within(self, seconds: float) -> bool:
        """True if the server closes the connection (EOF or reset) within `seconds`, with
        no further bytes; False if it stays open that long."""
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        assert data == b"", f"unexpected bytes after the response: {self.buf + data!r}"
        assert self.buf == b"", f"unexpected bytes after the response: {self.buf!r}"
        return True


def connect(server, timeout: float = 5.0) -> Conn:
    return Conn(server.connect(timeout=timeout))


def get_request(path: str = "/hello", extra: str = "", version: str = "1.1") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: test\r\n{extra}\r\n".encode()


def post_request(path: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n"
            f"{extra}\r\n").encode() + body


def assert_hello(resp: Resp) -> None:
    assert resp.status == 200, resp
    assert resp.header("content-type") == "application/json"
    assert resp.json() == {"hello": "world"}


def assert_still_serving(server, worker_pid: int) -> None:
    """After bad input: the same worker answers a normal request, the server is alive."""
    response = httpx.get(server.url + "/pid", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"pid": worker_pid}, "the worker was replaced (it crashed?)"
    with connect(server) as conn:
        conn.send(get_request("/hello"))
        assert_hello(conn.read_response())
    assert server.proc.poll() is None


# -- keep-alive, pipelining, HEAD ------------------------------------------------------------

def test_keep_alive_serves_two_requests_on_one_socket(server):
    with connect(server) as conn:
        conn.send(get_request("/hello"))
        first = conn.read_response()
        assert_hello(first)
        assert first.version == "HTTP/1.1"
        assert first.header("connection") is None  # keep-alive is HTTP/1.1's default
        conn.send(post_request("/echo", b"second"))
        second = conn.read_response()
        assert second.status == 200
        assert second.json()["body"] == "second"
        conn.send(get_request("/hello-sync"))
        third = conn.read_response()
        assert third.json() == {"hello": "sync"}
        assert not conn.closed_within(0.3)


def test_pipelined_requests_answered_in_order(server):
    with connect(server) as conn:
        started = time.monotonic()
        conn.send(get_request("/slow?delay=0.5")
                  + get_request("/hello")
                  + post_request("/echo", b"third", "Content-Type: text/plain\r\n")
                  + get_request("/hello-sync"))
        first, second, third, fourth = (conn.read_response() for _ in range(4))
        elapsed = time.monotonic() - started
    assert first.status == 200 and first.json() == {"slow": True, "delay": 0.5}
    assert_hello(second)
    assert third.json() == {"body": "third", "length": 5, "http_version": "1.1",
                            "content_type": "text/plain"}
    assert fourth.json() == {"hello": "sync"}
    assert elapsed >= 0.45


def test_pipelined_connection_close_stops_there(server):
    with connect(server) as conn:
        conn.send(get_request("/hello")
                  + get_request("/hello-sync", "Connection: close\r\n")
                  + get_request("/hello"))
        assert_hello(conn.read_response())
        second = conn.read_response()
        assert second.json() == {"hello": "sync"}
        assert second.header("connection") == "close"
        assert conn.closed_within(3.0)


def test_many_pipelined_requests_in_one_send(server):
    bodies = [f"request-{i:03d}".encode() for i in range(50)]
    with connect(server) as conn:
        conn.send(b"".join(post_request("/echo", body) for body in bodies))
        answers = [conn.read_response() for _ in bodies]
        assert not conn.closed_within(0.2)
    assert [r.status for r in answers] == [200] * 50
    assert [r.json()["body"] for r in answers] == [b.decode() for b in bodies]


@pytest.mark.parametrize("bad,status,detail", [
    (b"GET /hello HTTP/1.1\r\nHost: test\r\nBad Header: x\r\n\r\n", 400, "Malformed HTTP request: "),
    (b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * (MAX_HEADER + 100) + b"\r\n\r\n",
     431, "Request Header Fields Too Large"),
    (b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n", 413, "Content Too Large"),
], ids=["400", "431", "413"])
def test_pipelined_refusal_is_answered_after_the_running_request(server, worker_pid, bad, status, detail):
    """A request refused while parsing, pipelined behind a running one: the running one
    is answered, then the refusal, then the connection closes."""
    with connect(server, timeout=3.0) as conn:
        conn.send(get_request("/slow?delay=0.3") + bad + get_request("/hello"))
        first = conn.read_response()
        assert first.status == 200 and first.json() == {"slow": True, "delay": 0.3}
        try:
            second = conn.read_response()
        except (TimeoutError, socket.timeout):
            pytest.fail(f"no {status} after the pipelined response: the connection hangs")
        assert second.status == status
        assert second.json()["detail"].startswith(detail)
        assert second.header("connection") == "close"
        assert conn.closed_within(3.0)  # the third request is never answered
    assert_still_serving(server, worker_pid)


def test_half_closed_client_still_gets_its_answers(server):
    with connect(server) as conn:
        conn.send(get_request("/slow?delay=0.2") + get_request("/hello-sync"))
        conn.sock.shutdown(socket.SHUT_WR)
        first = conn.read_response()
        assert first.json() == {"slow": True, "delay": 0.2}
        second = conn.read_response()
        assert second.json() == {"hello": "sync"}
        assert conn.closed_within(3.0)


@pytest.mark.parametrize("path,expected", [("/hello", {"hello": "world"}),
                                           ("/hello-sync", {"hello": "sync"})])
def test_head_has_headers_but_no_body(server, path, expected):
    body = orjson.dumps(expected)
    with connect(server) as conn:
        conn.send(f"HEAD {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        head = conn.read_response(head_only=True)
        assert head.status == 200
        assert head.header("content-length") == str(len(body))
        assert head.header("content-type") == "application/json"
        # Had a body followed the head, it would sit in front of this next response.
        conn.send(get_request(path))
        after = conn.read_response()
        assert after.status == 200
        assert after.body == body


# -- request bodies ------------------------------------------------------------------------

def test_chunked_request_body(server):
    with connect(server) as conn:
        conn.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n1\r\n \r\n6;ext=1\r\nchunks\r\n0\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.json()["body"] == "hello chunks"
        assert resp.json()["length"] == 12
        # The connection stays usable after a chunked body.
        conn.send(get_request("/hello"))
        assert_hello(conn.read_response())


def test_chunked_request_body_over_the_limit_is_413(server, worker_pid):
    chunk = b"x" * 600
    with connect(server) as conn:
        conn.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + b"258\r\n" + chunk + b"\r\n" + b"258\r\n" + chunk + b"\r\n")
        resp = conn.read_response()
        assert resp.status == 413
        assert resp.json() == {"detail": "Content Too Large"}
        assert conn.closed_within(3.0)
    assert_still_serving(server, worker_pid)


def test_expect_100_continue(server):
    with connect(server) as conn:
        conn.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 7\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        interim = conn.read_response()
        assert interim.status == 100
        assert interim.version == "HTTP/1.1"
        assert conn.buf == b""
        conn.send(b"payload")
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.json()["body"] == "payload"


def test_expect_100_continue_with_too_large_body_gets_413_not_100(server):
    with connect(server) as conn:
        conn.send(f"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {MAX_BODY + 1}\r\n"
                  f"Expect: 100-continue\r\n\r\n".encode())
        resp = conn.read_response()
        assert resp.status == 413
        assert resp.json() == {"detail": "Content Too Large"}
        assert conn.closed_within(3.0)


def test_body_at_the_limit_is_accepted(server):
    with connect(server) as conn:
        conn.send(post_request("/echo", b"b" * MAX_BODY))
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.json()["length"] == MAX_BODY


def test_content_length_over_the_limit_is_413_before_the_body(server, worker_pid):
    with connect(server) as conn:
        # Only the head: the server must answer without waiting for the 100 kB.
        conn.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 413
        assert resp.header("content-type") == "application/json"
        assert resp.header("connection") == "close"
        assert resp.json() == {"detail": "Content Too Large"}
        assert conn.closed_within(3.0)
    assert_still_serving(server, worker_pid)


# -- HTTP/1.0 and Connection: close ------------------------------------------------------------

def test_http_10_response_then_close(server):
    with connect(server) as conn:
        conn.send(b"GET /hello HTTP/1.0\r\n\r\n")
        resp = conn.read_response()
        assert_hello(resp)
        assert resp.header("connection") == "close"
        assert conn.closed_within(3.0)


def test_http_10_keep_alive_on_request(server):
    with connect(server) as conn:
        conn.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = conn.read_response()
        assert_hello(first)
        assert first.header("connection").lower() == "keep-alive"
        conn.send(b"POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok")
        second = conn.read_response()
        assert second.json()["body"] == "ok"
        assert second.json()["http_version"] == "1.0"


def test_connection_close_is_honoured(server):
    with connect(server) as conn:
        conn.send(get_request("/hello", "Connection: close\r\n"))
        resp = conn.read_response()
        assert_hello(resp)
        assert resp.header("connection") == "close"
        assert conn.closed_within(3.0)


def test_date_and_server_headers(server):
    with connect(server) as conn:
        conn.send(get_request("/hello"))
        resp = conn.read_response()
    assert resp.header("server") == "catzilla"
    assert len(resp.headers_named("date")) == 1
    date = resp.header("date")
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
                        r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                        r"\d{2}:\d{2}:\d{2} GMT", date), date
    sent = email.utils.parsedate_to_datetime(date).timestamp()
    assert abs(sent - time.time()) < 5
    # Also through a real client, and on error responses.
    missing = httpx.get(server.url + "/nope", timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    assert missing.headers["server"] == "catzilla"
    assert "date" in missing.headers


# -- limits and bad input ------------------------------------------------------------------------

def test_header_block_at_the_limit_is_accepted(server):
    with connect(server) as conn:
        conn.send(get_request("/header", f"X-Test: {'a' * (MAX_HEADER - 200)}\r\n"))
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.json() == {"x-test": "a" * (MAX_HEADER - 200)}


def test_header_block_over_the_limit_is_431(server, worker_pid):
    with connect(server) as conn:
        conn.send(get_request("/hello", f"X-Big: {'a' * (MAX_HEADER + 100)}\r\n"))
        resp = conn.read_response()
        assert resp.status == 431
        assert resp.header("content-type") == "application/json"
        assert resp.header("connection") == "close"
        assert resp.json() == {"detail": "Request Header Fields Too Large"}
        assert conn.closed_within(3.0)
    assert_still_serving(server, worker_pid)


def test_many_headers_over_the_limit_is_431(server, worker_pid):
    headers = "".join(f"X-H{i}: {'v' * 40}\r\n" for i in range(MAX_HEADER // 40))
    with connect(server) as conn:
        conn.send(get_request("/hello", headers))
        resp = conn.read_response()
        assert resp.status == 431
        assert resp.json() == {"detail": "Request Header Fields Too Large"}
        assert conn.closed_within(3.0)
    assert_still_serving(server, worker_pid)


BAD_REQUESTS = {
    "malformed request line": (b"THIS IS NOT HTTP\r\n\r\n", None),
    "garbage bytes": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", None),
    "content-length and transfer-encoding": (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "Content-Length"),
    "transfer-encoding then content-length": (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "Content-Length"),
    "duplicated content-length": (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "Content-Length"),
    "conflicting content-length": (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "Content-Length"),
    "non-numeric content-length": (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: abc\r\n\r\n", None),
    "space in header name": (b"GET /hello HTTP/1.1\r\nHost: test\r\nBad Header: x\r\n\r\n", None),
    "parenthesis in header name": (b"GET /hello HTTP/1.1\r\nHost: test\r\nX(y): 1\r\n\r\n", None),
    "NUL in header value": (b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Test: a\x00b\r\n\r\n", None),
    "bad chunk size": (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", None),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_is_400_json_and_close(server, worker_pid, name):
    data, mention = BAD_REQUESTS[name]
    with connect(server) as conn:
        conn.send(data)
        resp = conn.read_response()
        assert resp.status == 400, resp
        assert resp.header("content-type") == "application/json"
        assert resp.header("connection") == "close"
        detail = resp.json()["detail"]
        assert set(resp.json()) == {"detail"}
        assert detail.startswith("Malformed HTTP request: "), detail
        if mention:
            assert mention in detail, detail
        assert conn.closed_within(3.0)
    assert_still_serving(server, worker_pid)


def test_bad_request_after_a_good_one_on_the_same_connection(server, worker_pid):
    with connect(server) as conn:
        conn.send(get_request("/hello"))
        assert_hello(conn.read_response())
        conn.send(b"GET /hello HTTP/1.1\r\nHost: test\r\nBad Header: x\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 400
        assert resp.json()["detail"].startswith("Malformed HTTP request: ")
        assert conn.closed_within(3.0)
    assert_still_serving(server, worker_pid)


def test_request_in_one_byte_fragments(server):
    body = b'{"fragmented": true}'
    data = post_request("/echo", body, "Content-Type: application/json\r\n") + get_request("/hello")
    with connect(server) as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            conn.send(data[i:i + 1])
            time.sleep(0.001)
        first = conn.read_response()
        assert first.status == 200
        assert first.json() == {"body": body.decode(), "length": len(body), "http_version": "1.1",
                                "content_type": "application/json"}
        assert_hello(conn.read_response())


# -- timeouts --------------------------------------------------------------------------------------

def test_idle_keep_alive_connection_is_closed(fast_timeouts):
    with connect(fast_timeouts) as conn:
        conn.send(get_request("/hello"))
        assert_hello(conn.read_response())
        started = time.monotonic()
        assert conn.closed_within(4.0), "idle connection still open 4 s after --keep-alive-timeout 1"
        assert time.monotonic() - started < 2.5


def test_idle_keep_alive_connection_is_not_closed_early(fast_timeouts):
    """--keep-alive-timeout 1: a client pausing 0.6 s between requests keeps its connection.

    Three connections, their pauses staggered by a third of a second, so that whatever the
    phase of the server's once-a-second timer, the pauses fall across one of its ticks."""
    def client(index: int) -> str:
        time.sleep(index * 0.33)
        with connect(fast_timeouts) as conn:
            conn.send(get_request("/hello"))
            assert_hello(conn.read_response())
            time.sleep(0.6)
            try:
                conn.send(get_request("/hello"))
                resp = conn.read_response()
            except (EOFError, ConnectionError) as exc:
                return f"closed after 0.6 s idle: {exc!r}"
            return "ok" if resp.status == 200 else f"status {resp.status}"

    with ThreadPoolExecutor(3) as executor:
        results = list(executor.map(client, range(3)))
    assert results == ["ok", "ok", "ok"], results


def test_slow_head_gets_408_while_others_are_served(fast_timeouts):
    with connect(fast_timeouts) as slow:
        slow.send(b"GET /hello HTTP/1.1\r\nHost: test\r\n")  # never finishes its head
        started = time.monotonic()
        with httpx.Client(timeout=TIMEOUT) as client:
            for _ in range(3):
                t = time.monotonic()
                response = client.get(fast_timeouts.url + "/hello")
                assert response.status_code == 200
                assert response.json() == {"hello": "world"}
                assert time.monotonic() - t < 0.5
        resp = slow.read_response()
        elapsed = time.monotonic() - started
        assert resp.status == 408
        assert resp.json() == {"detail": "Request Timeout"}
        assert resp.header("connection") == "close"
        assert elapsed < 2.5
        assert slow.closed_within(3.0)
    assert httpx.get(fast_timeouts.url + "/hello", timeout=TIMEOUT).status_code == 200


def test_stalled_body_gets_408(fast_timeouts):
    with connect(fast_timeouts) as conn:
        conn.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        resp = conn.read_response()
        assert resp.status == 408
        assert resp.json() == {"detail": "Request Timeout"}
        assert time.monotonic() - started < 2.5
        assert conn.closed_within(3.0)


def test_head_sent_within_the_header_timeout_is_served(fast_timeouts):
    """--header-timeout 1: a head that takes 0.6 s to arrive is within the limit.

    Staggered like the keep-alive test above, so one attempt straddles a timer tick."""
    def client(index: int) -> str:
        time.sleep(index * 0.33)
        with connect(fast_timeouts) as conn:
            conn.send(b"GET /hello HTTP/1.1\r\n")
            time.sleep(0.6)
            try:
                conn.send(b"Host: test\r\n\r\n")
                resp = conn.read_response()
            except (EOFError, ConnectionError) as exc:
                return f"closed: {exc!r}"
            return "ok" if resp.status == 200 else f"status {resp.status} after a 0.6 s head"

    with ThreadPoolExecutor(3) as executor:
        results = list(executor.map(client, range(3)))
    assert results == ["ok", "ok", "ok"], results


# -- graceful stop ---------------------------------------------------------------------------------

def test_sigterm_finishes_in_flight_requests_and_exits_0():
    with run_server("protocol_app:app", "--graceful-timeout", "10") as s:
        paths = ["/tracked-slow?delay=1", "/tracked-slow?delay=1", "/tracked-slow-sync?delay=1"]

        def request(path: str) -> Resp:
            with connect(s, timeout=10) as conn:
                conn.send(get_request(path))
                return conn.read_response()

        with ThreadPoolExecutor(3) as executor:
            futures = [executor.submit(request, p) for p in paths]
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if httpx.get(s.url + "/inflight", timeout=TIMEOUT).json()["slow"] == 3:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the three slow requests never were in flight together")
            stopped_at = time.monotonic()
            status = s.stop(signal.SIGTERM)
            responses = [f.result(timeout=15) for f in futures]
        assert status == 0, s.logs()
        assert time.monotonic() - stopped_at < 8
        assert [r.status for r in responses] == [200, 200, 200], responses
        assert [r.json()["tracked"] for r in responses] == ["async", "async", "sync"]
        logs = s.logs()
        assert "stopping gracefully" in logs
        assert "graceful timeout" not in logs
