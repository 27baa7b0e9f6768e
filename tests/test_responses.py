"""Responses of tests/apps/responses_app.py: repeated headers, cookies, redirects, media
types, FileResponse (ranges, validators, HEAD, sendfile) and SSE; through the TestClient
(the real protocol in memory), and over a real server where the wire matters (raw bytes,
sendfile, streaming to a real client, real cookie jars, the access log)."""
from __future__ import annotations

import email.utils
import os
import socket
import threading
import time

import httpx
import pytest
import requests

from conftest import app_client, run_server, wait_for
from responses_files import BIG_SIZE, big_content, make_tree

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("responses"))


@pytest.fixture(scope="module")
def server(files):
    with run_server("responses_app:app", "--workers", "1", "--threads", "4",
                    env={"RESPONSES_FILES": str(files)}) as s:
        yield s


@pytest.fixture(scope="module")
def wire(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


@pytest.fixture(scope="module")
def client(files):
    with app_client("responses_app:app", threads=4, env={"RESPONSES_FILES": str(files)}) as c:
        yield c


def raw_exchange(server, request: bytes) -> bytes:
    """Send `request` as is, read until the server closes (requests say Connection: close)."""
    with server.connect() as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def head_and_body(data: bytes) -> tuple[str, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


# -- headers and cookies -----------------------------------------------------------------------

def test_two_set_cookie_fields_reach_a_real_client(server, wire):
    response = wire.get("/cookies")
    assert response.status_code == 200
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 5
    assert wire.cookies.get("theme") == "dark"
    with requests.Session() as session:  # another client's jar keeps both too
        session.get(server.url + "/cookies", timeout=TIMEOUT)
        assert session.cookies.get("theme") == "dark"
        assert session.cookies.get("spaced") == '"a b"'


def test_cookie_attributes(client):
    cookies = client.get("/cookies").headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("session="))
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in session.split(";")}
    assert attributes["session"] == "session=abc"
    assert attributes["domain"] == "Domain=example.com"
    assert attributes["max-age"] == "Max-Age=3600"
    assert attributes["path"] == "Path=/app"
    assert attributes["samesite"] == "SameSite=strict"
    assert "httponly" in attributes and "secure" in attributes
    theme = next(c for c in cookies if c.startswith("theme="))
    assert theme == "theme=dark; Path=/; SameSite=lax"  # Starlette's defaults
    until = next(c for c in cookies if c.startswith("until="))
    assert "expires=Wed, 02 Jan 2030 03:04:05 GMT" in until
    deleted = next(c for c in cookies if c.startswith("old="))
    assert "Max-Age=0" in deleted and "expires=" in deleted


@pytest.mark.parametrize("path", ["/cookie-attack", "/header-attack"])
def test_line_breaks_in_headers_never_split_the_response(server, path):
    data = raw_exchange(server, b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
    head, body = head_and_body(data)
    assert head.startswith("HTTP/1.1 500 ")
    assert "x-evil" not in data.decode("latin-1").lower()


def test_headers_view_behaves_as_starlettes(client):
    response = client.get("/headers")
    assert response.headers.get_list("x-multi") == ["1", "2"]
    assert response.headers.get_list("x-one") == ["b"]
    assert response.headers.get_list("link") == ["</a>; rel=preload", "</b>; rel=preload"]
    assert response.headers["x-default"] == "d"
    assert "x-gone" not in response.headers
    assert response.headers["x-legacy"] == "0.2.3"
    assert response.headers["x-read"] == "0.2.3|b|2"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_body_and_content_type_keywords(client):
    response = client.get("/body-kw")
    assert response.status_code == 201
    assert response.headers["content-type"] == "text/html"  # 0.2.3's keyword: sent as given
    assert response.text == "<b>hi</b>"
    assert client.get("/media-both").headers["content-type"] == "text/html; charset=utf-8"


def test_redirects(client):
    response = client.get("/redirect", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/target%20path?q=1"
    assert response.content == b""
    response = client.get("/redirect-301", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == "https://example.com/x"


def test_streams_without_a_media_type_are_text(client):
    response = client.get("/stream-documented")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    assert response.text == "line 0\nline 1\nline 2\n"
    response = client.get("/stream-bare")
    assert response.headers["content-type"] == "text/plain"  # 0.2.3's default, as it sends it
    assert response.text == "ab"


# -- FileResponse ------------------------------------------------------------------------------

def test_file_response_whole_file(client, files):
    response = client.get("/file/hello.txt")
    assert response.status_code == 200
    assert response.content == b"hello world\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"].startswith('"')
    mtime = int(os.stat(files / "hello.txt").st_mtime)
    assert response.headers["last-modified"] == email.utils.formatdate(mtime, usegmt=True)


def test_big_file_and_the_connection_stays_usable(server):
    """Sent in several sendfile calls; the next request on the connection still works."""
    expected = big_content()
    with server.connect() as sock:
        sock.sendall(b"GET /file/big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /file/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while data.count(b"hello world\n") == 0 or len(data) < BIG_SIZE:
            chunk = sock.recv(1 << 20)
            assert chunk, "closed early"
            data += chunk
    head, body = head_and_body(data)
    assert f"content-length: {BIG_SIZE}" in head
    assert body[:BIG_SIZE] == expected
    assert body[BIG_SIZE:].startswith(b"HTTP/1.1 200 OK")
    assert body.endswith(b"hello world\n")


def test_single_range(client):
    response = client.get("/file/big.bin", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 100-199/{BIG_SIZE}"
    assert response.content == big_content()[100:200]
    suffix = client.get("/file/big.bin", headers={"Range": "bytes=-10"})
    assert suffix.status_code == 206 and suffix.content == big_content()[-10:]
    open_ended = client.get("/file/hello.txt", headers={"Range": "bytes=6-"})
    assert open_ended.content == b"world\n"
    assert open_ended.headers["content-range"] == "bytes 6-11/12"


def test_multiple_ranges_are_multipart_byteranges(client):
    response = client.get("/file/big.bin", headers={"Range": "bytes=0-9, 1000-1009, 5-12"})
    assert response.status_code == 206
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    boundary = content_type.split("boundary=")[1].encode()
    assert len(response.content) == int(response.headers["content-length"])
    parts = response.content.split(b"--" + boundary)
    assert parts[-1] == b"--\r\n"
    bodies = []
    for part in parts[1:-1]:
        head, _, body = part.strip(b"\r\n").partition(b"\r\n\r\n")
        assert b"content-type: application/octet-stream" in head
        bodies.append((head, body))
    expected = big_content()
    # 0-9 and 5-12 overlap: merged into 0-12.
    assert bodies[0][0].endswith(f"content-range: bytes 0-12/{BIG_SIZE}".encode())
    assert bodies[0][1] == expected[0:13]
    assert bodies[1][0].endswith(f"content-range: bytes 1000-1009/{BIG_SIZE}".encode())
    assert bodies[1][1] == expected[1000:1010]


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=5-1", "bytes=", "bytes=12-", "bytes=999999999-", "bytes=-0"])
def test_wrong_range_is_416(client, header):
    response = client.get("/file/hello.txt", headers={"Range": header})
    assert response.status_code == 416, header
    assert response.headers["content-range"] == "bytes */12"
    assert response.json()["detail"]


def test_other_units_and_many_ranges_send_the_whole_file(client):
    assert client.get("/file/hello.txt", headers={"Range": "items=0-1"}).status_code == 200
    many = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(40))  # over --max-ranges
    response = client.get("/file/big.bin", headers={"Range": "bytes=" + many})
    assert response.status_code == 200
    assert len(response.content) == BIG_SIZE


def test_conditional_requests(client):
    first = client.get("/file/hello.txt")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    response = client.get("/file/hello.txt", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert "content-length" not in response.headers
    assert client.get("/file/hello.txt", headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get("/file/hello.txt", headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get("/file/hello.txt", headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get("/file/hello.txt", headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}).status_code == 200
    assert client.get("/file/hello.txt", headers={"If-Modified-Since": "garbage"}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    assert client.get("/file/hello.txt", headers={"If-None-Match": '"other"', "If-Modified-Since": modified}).status_code == 200
    assert client.get("/file/hello.txt", headers={"If-Match": '"other"'}).status_code == 412
    assert client.get("/file/hello.txt", headers={"If-Match": etag}).status_code == 200


def test_if_range(client):
    etag = client.get("/file/hello.txt").headers["etag"]
    same = client.get("/file/hello.txt", headers={"Range": "bytes=0-4", "If-Range": etag})
    assert same.status_code == 206 and same.content == b"hello"
    changed = client.get("/file/hello.txt", headers={"Range": "bytes=0-4", "If-Range": '"stale"'})
    assert changed.status_code == 200 and changed.content == b"hello world\n"
    old_date = client.get("/file/hello.txt", headers={"Range": "bytes=0-4", "If-Range": "Sat, 01 Jan 2000 00:00:00 GMT"})
    assert old_date.status_code == 200


def test_head_sends_the_head_only(server):
    with server.connect() as sock:
        sock.sendall(b"HEAD /file/big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /file/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while not data.endswith(b"hello world\n"):
            chunk = sock.recv(65536)
            assert chunk, "closed early"
            data += chunk
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert f"content-length: {BIG_SIZE}".encode() in first
    assert rest.startswith(b"HTTP/1.1 200 OK")  # no body bytes between the two responses


def test_download_filename(client):
    response = client.get("/download")
    assert response.headers["content-disposition"] == "attachment; filename*=utf-8''report%20%C3%BC.txt"


def test_missing_file_is_a_500_and_the_worker_lives(client):
    assert client.get("/missing-file").status_code == 500
    assert client.get("/file/hello.txt").status_code == 200


# -- server-sent events ------------------------------------------------------------------------

def test_event_source_response(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        with c.stream("GET", "/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            text = "".join(response.iter_text())
    events = [block for block in text.split("\r\n\r\n") if block]
    assert events[0] == "id: 1\r\nevent: greeting\r\ndata: first"
    assert events[1] == "id: 2\r\ndata: line one\r\ndata: line two\r\nretry: 5000"
    assert ": ping" in events[2:-1]  # the source was quiet for 0.35 s, pings every 0.1 s
    assert events[-1] == "data: plain"


def test_event_source_from_a_sync_iterator(client):
    response = client.get("/events-sync")
    assert response.text == "data: a\r\n\r\ndata: b\r\n\r\n"


# -- memory ------------------------------------------------------------------------------------

def _worker_pid(master: int) -> int:
    children = open(f"/proc/{master}/task/{master}/children").read().split()
    assert children, "no worker"
    return int(children[0])


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_one_gib_download_keeps_the_worker_small(tmp_path):
    """A 1 GiB FileResponse goes with sendfile: the worker's RSS grows by far less than
    32 MiB while it is sent (sampled every 20 ms)."""
    gib = 1024 ** 3
    path = tmp_path / "huge.bin"
    with open(path, "wb") as f:
        f.truncate(gib)  # sparse: the page cache serves zeros, the disk stays free
    with run_server("responses_app:app", "--workers", "1", env={"RESPONSES_FILES": str(tmp_path)}) as s:
        with httpx.Client(base_url=s.url, timeout=TIMEOUT) as c:
            # Warm the worker up: the first file response imports and caches what it needs.
            assert c.get("/file/huge.bin", headers={"Range": "bytes=0-1"}).status_code == 206
        worker = _worker_pid(s.proc.pid)
        baseline = _rss_kib(worker)
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_kib(worker))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        received = 0
        started = time.monotonic()
        try:
            with s.connect(timeout=30) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                sock.sendall(b"GET /file/huge.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                buffer = bytearray(4 << 20)
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(4096)
                received = len(head.partition(b"\r\n\r\n")[2])
                while n := sock.recv_into(buffer):
                    received += n
        finally:
            done.set()
            sampler.join()
        elapsed = time.monotonic() - started
        growth_mib = (peak[0] - baseline) / 1024
        print(f"1 GiB FileResponse: {elapsed:.1f} s, worker RSS {baseline / 1024:.1f} MiB, "
              f"peak growth {growth_mib:.1f} MiB")
        assert received == gib
        assert growth_mib < 32


def test_a_middleware_can_take_over_a_file_body(files):
    """GZipMiddleware replaces body_iterator: the file is then read and streamed compressed."""
    with run_server("responses_gzip_app:app", "--workers", "1", env={"RESPONSES_FILES": str(files)}) as s:
        with httpx.Client(base_url=s.url, timeout=TIMEOUT) as c:
            for path in ("/file/big.bin", "/static/big.bin"):
                response = c.get(path, headers={"Accept-Encoding": "gzip"})
                assert response.status_code == 200
                assert response.headers["content-encoding"] == "gzip"
                assert response.content == big_content()
            plain = c.get("/file/hello.txt", headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in plain.headers and plain.content == b"hello world\n"


def test_a_reader_that_stalls_is_cut_off_and_others_are_served(tmp_path):
    """sendfile waits for the socket; a client that takes nothing for --write-timeout is
    dropped, and meanwhile the worker answers other connections."""
    size = 64 * 1024 * 1024
    with open(tmp_path / "large.bin", "wb") as f:
        f.truncate(size)
    (tmp_path / "hello.txt").write_text("hello world\n")
    with run_server("responses_app:app", "--workers", "1", "--write-timeout", "1",
                    env={"RESPONSES_FILES": str(tmp_path)}) as s:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        stalled.connect((s.host, s.port))
        stalled.sendall(b"GET /file/large.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        with httpx.Client(base_url=s.url, timeout=TIMEOUT) as c:
            assert c.get("/file/hello.txt").content == b"hello world\n"
        wait_for(lambda: "cut short" in s.logs(), 10, message="the stalled download to be cut")
        received = 0
        stalled.settimeout(TIMEOUT)
        try:
            while chunk := stalled.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        finally:
            stalled.close()
        assert received < size


def test_access_log_has_the_status_and_size_sent(server, wire):
    wire.get("/file/hello.txt?log=1", headers={"Range": "bytes=0-4"})
    wait_for(lambda: '"GET /file/hello.txt HTTP/1.1" 206 ' in server.logs(), 5, message="a 206 access line")
    etag = wire.get("/file/hello.txt").headers["etag"]
    wire.get("/file/hello.txt", headers={"If-None-Match": etag})
    wait_for(lambda: '"GET /file/hello.txt HTTP/1.1" 304 ' in server.logs(), 5, message="a 304 access line")
