"""Request bodies: uploads spooled to disk and their limits, streamed bodies with flow
control, Starlette's awaitable accessors, request.url, 0.2.3's names. Over real sockets where
the bytes' arrival matters (streams, flow control, Expect, pipelining, timeouts, a worker's
memory and files), through the TestClient (the real protocol in memory) for the rest."""
from __future__ import annotations

import os
import socket
import threading
import time

import httpx
import pytest

from conftest import app_client, read_response, run_server, wait_for

TIMEOUT = 20
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def save_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("saved")


@pytest.fixture(scope="module")
def server(save_dir):
    with run_server("bodies_app:app", "--header-timeout", "2",
                    env={"BODIES_SAVE_DIR": str(save_dir)}) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


@pytest.fixture(scope="module")
def memory(save_dir):
    with app_client("bodies_app:app", header_timeout=2, env={"BODIES_SAVE_DIR": str(save_dir)}) as c:
        yield c


def rss_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def raw_post(path: str, length: int | str, extra: str = "") -> bytes:
    framing = "transfer-encoding: chunked" if length == "chunked" else f"content-length: {length}"
    return f"POST {path} HTTP/1.1\r\nhost: t\r\n{framing}\r\n{extra}\r\n".encode()


# --- uploads ---------------------------------------------------------------------------------

def test_small_upload_stays_in_memory_large_one_goes_to_disk(memory):
    client = memory
    small = client.post("/upload", files={"file": ("s.csv", b"abcd" * 100, "text/csv")}, data={"note": "hi"})
    assert small.status_code == 200
    assert small.json() == {"filename": "s.csv", "content_type": "text/csv", "size": 400, "on_disk": False,
                            "header": 'form-data; name="file"; filename="s.csv"', "first": "abcd",
                            "note": "hi", "body": 0}
    data = os.urandom(3 * MiB)
    large = client.post("/upload", files={"file": ("l.bin", data, "application/x-thing")})
    assert large.status_code == 200
    facts = large.json()
    assert (facts["size"], facts["on_disk"], facts["content_type"]) == (3 * MiB, True, "application/x-thing")
    assert facts["first"].encode("latin-1") == data[:4]


def test_upload_read_with_and_without_await(memory):
    client = memory
    r = client.post("/upload/async", files={"file": ("a.bin", os.urandom(2 * MiB))})
    assert r.status_code == 200
    assert r.json()["read"] == r.json()["again"] == 2 * MiB
    assert r.json()["same"] is True


def test_save_to(memory, save_dir):
    client = memory
    data = os.urandom(3 * MiB + 7)
    r = client.post("/upload/save", files={"file": ("saved.bin", data)})
    assert r.status_code == 200
    assert (save_dir / "saved.bin").read_bytes() == data
    small = b"tiny file"
    client.post("/upload/save", files={"file": ("tiny.txt", small)})
    assert (save_dir / "tiny.txt").read_bytes() == small


def test_uploads_leave_no_open_files(client):
    pid = client.get("/pid").json()["pid"]
    client.post("/upload", files={"file": ("warm.bin", os.urandom(2 * MiB))})
    before = len(os.listdir(f"/proc/{pid}/fd"))
    for _ in range(5):
        assert client.post("/upload", files={"file": ("f.bin", os.urandom(2 * MiB))}).status_code == 200
    # Uploads are closed once the response is sent (as Starlette closes a request's form):
    # a moment after the client has read it.
    wait_for(lambda: len(os.listdir(f"/proc/{pid}/fd")) <= before, 5, message="the uploads' files closed")


def test_expect_continue_on_an_upload_route(server):
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="c.txt"\r\n\r\n'
            b"continued\r\n--B--\r\n")
    with server.connect() as sock:
        sock.sendall(raw_post("/upload", len(body), "expect: 100-continue\r\n"
                              "content-type: multipart/form-data; boundary=B\r\n"))
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        status, _, answer = read_response(sock)
        assert status == 200 and b'"size":9' in answer


def test_multipart_split_anywhere_parses_the_same():
    """In process: the receiver fed the body in pieces cut at every position gives what
    one piece gives (boundaries, headers and CRLFs split across chunks)."""
    from catzilla.forms import FormLimits, MultipartReceiver, parse_form

    body = (b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nfirst\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="x.bin"\r\n'
            b"Content-Type: text/csv\r\n\r\n\r\n--XyZ-not-the-end\x00\xff\r\n--XyZ--\r\n")
    whole = parse_form("multipart/form-data; boundary=XyZ", body)
    expected = (whole["a"], whole.files["f"][0].read())
    assert expected == ("first", b"\r\n--XyZ-not-the-end\x00\xff")
    for cut in range(1, len(body)):
        for cut2 in (cut, min(cut + 7, len(body))):
            receiver = MultipartReceiver(b"XyZ", FormLimits(spool_size=4))
            for piece in (body[:cut], body[cut:cut2], body[cut2:]):
                receiver.feed(piece)
            form = receiver.finish()
            assert (form["a"], form["f"].read()) == expected, cut


def test_form_fields_and_optional_file(memory):
    client = memory
    assert client.post("/form/fields", data={"name": "x"}).json() == {"name": "x", "file": None}
    r = client.post("/form/fields", data={"name": "y"}, files={"file": ("f.txt", b"1")})
    assert r.json() == {"name": "y", "file": "f.txt"}
    # urlencoded forms are read whole, and still bind
    assert client.post("/form/fields", data={"name": "z"}).json()["name"] == "z"


def test_malformed_multipart_is_400(memory):
    client = memory
    for body in (b"--XYZ\r\nno headers here\r\n\r\nx\r\n--XYZ--\r\n", b"not multipart at all",
                 b"--XYZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\ncut short"):
        r = client.post("/upload", content=body, headers={"content-type": "multipart/form-data; boundary=XYZ"})
        assert r.status_code == 400, body
        assert isinstance(r.json()["detail"], str)
    r = client.post("/upload", content=b"x", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400
    assert "boundary" in r.json()["detail"]


@pytest.fixture(scope="module")
def limited():
    with app_client("bodies_app:app", max_file_size=1000, max_files=2, max_part_header_size=300,
                    max_body_size=5000, max_fields=2) as c:
        yield c


@pytest.mark.parametrize("case", ["file size", "files", "fields", "part header", "field bytes"])
def test_each_upload_limit_is_413_json(limited, case):
    files: list = [("files", ("a", b"x" * 10))]
    data: dict = {}
    path = "/upload/many"
    if case == "file size":
        files = [("files", ("a", b"x" * 1001))]
    elif case == "files":
        files = [("files", (name, b"x")) for name in "abc"]
    elif case == "fields":
        data = {"a": "1", "b": "2", "c": "3"}
    elif case == "part header":
        files = [("files", ("n" * 400, b"x"))]
    else:
        path, files, data = "/form/fields", [], {"name": "v" * 6000}
    r = limited.post(path, files=files, data=data)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["detail"], str)
    # within the limits, the same route answers
    ok = limited.post("/upload/many", files=[("files", ("a", b"x" * 1000))])
    assert ok.json() == {"names": ["a"]}


def test_upload_memory_stays_flat(server, client, save_dir):
    """A 96 MiB upload to a route that saves it: the worker's peak RSS grows by far less
    than the upload (the body is parsed as it arrives and spooled to disk)."""
    pid = client.get("/pid").json()["pid"]
    before = rss_kib(pid, "VmRSS")
    size = 96 * MiB
    boundary = "bnd123"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = os.urandom(MiB)

    def body():
        yield head
        for _ in range(size // MiB):
            yield block
        yield tail

    r = client.post("/upload/save", content=body(),
                    headers={"content-type": f"multipart/form-data; boundary={boundary}",
                             "content-length": str(len(head) + size + len(tail))})
    assert r.status_code == 200, r.text
    assert r.json()["size"] == size
    assert os.path.getsize(save_dir / "big.bin") == size
    growth_mib = (rss_kib(pid, "VmHWM") - before) / 1024
    assert growth_mib < 32, f"peak RSS grew by {growth_mib:.1f} MiB"


# --- streamed bodies -------------------------------------------------------------------------

def test_stream_gives_chunks_as_they_arrive(client):
    data = os.urandom(3 * MiB)
    r = client.post("/stream?tag=whole", content=data)
    assert r.status_code == 200
    assert r.json()["total"] == len(data)
    assert r.json()["chunks"] > 2  # not one buffered body
    assert client.post("/stream/sync", content=data).json() == {"total": len(data), "thread": True}


def test_await_body_reads_a_stream_whole(memory):
    client = memory
    r = client.post("/stream/whole", json={"k": "v" * 300000})
    assert r.json() == {"before": 0, "size": 300008, "after": 300008, "json": {"k": "v" * 300000}}


def test_await_form_on_a_streaming_route_spools_as_it_arrives(memory):
    client = memory
    data = os.urandom(3 * MiB)
    r = client.post("/stream/form", files={"file": ("s.bin", data)}, data={"note": "n"})
    assert r.json() == {"size": len(data), "on_disk": True, "note": "n", "body": 0}
    assert client.post("/stream/form", content=b"--B\r\nbroken",
                       headers={"content-type": "multipart/form-data; boundary=B"}).status_code == 400


def test_stream_chunked_body(client):
    def gen():
        for _ in range(20):
            yield b"y" * 5000

    assert client.post("/stream?tag=chunked", content=gen()).json()["total"] == 100000


def test_stream_not_bounded_by_max_body_size():
    with app_client("bodies_app:app", max_body_size=1000) as s:
        data = os.urandom(2 * MiB)
        assert s.post("/stream", content=data).json()["total"] == len(data)
        assert s.post("/plain", content=data).status_code == 413
        assert s.post("/big", content=data).json() == {"size": len(data)}
        too_big = s.post("/big", content=b"x" * (32 * MiB + 1))
        assert too_big.status_code == 413


def test_stream_over_its_own_limit_is_413(server):
    # announced: refused at the head, before the handler runs
    with server.connect() as sock:
        sock.sendall(raw_post("/stream", 64 * MiB + 1))
        status, _, body = read_response(sock)
        assert status == 413
    # chunked: the handler hears it from stream() and its answer is a 413 too
    with server.connect() as sock:
        sock.sendall(raw_post("/stream/small", "chunked"))
        for _ in range(3):
            sock.sendall(b"190\r\n" + b"z" * 400 + b"\r\n")
        status, _, body = read_response(sock)
        assert status == 413
        assert b"detail" in body


def test_expect_continue_on_a_streaming_route(server):
    with server.connect() as sock:
        sock.sendall(raw_post("/stream?tag=continue", 5, "expect: 100-continue\r\n"))
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"hello")
        status, _, body = read_response(sock)
        assert status == 200
        assert b'"total":5' in body


def test_stream_flow_control_pauses_reading(server, client):
    """A handler that takes 0.2 s per chunk: the client cannot push 256 MiB at it; its
    sends block once the socket buffers and one stream buffer are full."""
    sent = 0
    sock = server.connect()
    sock.sendall(raw_post("/stream?tag=slow&delay=0.2", 60 * MiB))
    block = b"s" * 65536
    stop = time.monotonic() + 2.0

    def push():
        nonlocal sent
        sock.settimeout(0.2)
        while time.monotonic() < stop:
            try:
                sent += sock.send(block)
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return

    thread = threading.Thread(target=push)
    thread.start()
    thread.join()
    events = client.get("/events", params={"tag": "slow"}).json()["events"]
    assert 0 < len(events) < 20  # the handler is behind ...
    assert sent < 30 * MiB, f"{sent / MiB:.1f} MiB went in while the handler took {len(events)} chunks"
    sock.close()  # ... and a client that goes away mid-body is heard as ClientDisconnect
    wait_for(lambda: "disconnect" in client.get("/events", params={"tag": "slow"}).json()["events"],
             10, message="ClientDisconnect in the handler")


def test_disconnect_mid_stream(server, client):
    with server.connect() as sock:
        sock.sendall(raw_post("/stream?tag=gone", 100000) + b"q" * 1000)
        wait_for(lambda: client.get("/events", params={"tag": "gone"}).json()["events"] == [1000], 10,
                 message="the first chunk")
    wait_for(lambda: client.get("/events", params={"tag": "gone"}).json()["events"][-1] == "disconnect",
             10, message="ClientDisconnect")
    assert client.get("/pid").status_code == 200  # the worker is fine
    # logged as nginx does (499), without a traceback: a client hanging up is no handler bug
    wait_for(lambda: '"POST /stream HTTP/1.1" 499' in server.logs(), 5, message="the 499 access line")
    assert "Traceback" not in server.logs()


def test_pipelined_stream_behind_another_request(server):
    body = b"b" * 600000
    with server.connect() as sock:
        sock.sendall(b"GET /pid HTTP/1.1\r\nhost: t\r\n\r\n" + raw_post("/stream?tag=pipe", len(body))
                     + body[:300000])
        assert read_response(sock)[0] == 200
        sock.sendall(body[300000:])
        status, _, answer = read_response(sock)
        assert (status, b'"total":600000' in answer) == (200, True)
        sock.sendall(b"GET /pid HTTP/1.1\r\nhost: t\r\n\r\n")  # the connection goes on
        status, _, answer = read_response(sock)
        assert status == 200 and b"pid" in answer


def test_stalled_stream_times_out(server):
    # --header-timeout 2: a body that stops arriving is a 408, which the handler hears
    with server.connect(timeout=15) as sock:
        sock.sendall(raw_post("/stream?tag=stall", 100000) + b"q" * 10)
        started = time.monotonic()
        status, headers, body = read_response(sock)
        assert status == 408
        assert b"detail" in body
        assert time.monotonic() - started < 10


def test_stream_answered_early_keeps_connection_usable(server):
    with server.connect() as sock:
        sock.sendall(raw_post("/stream/early", 300000) + b"e" * 100)
        status, _, _ = read_response(sock)
        assert status == 200
        sock.sendall(b"e" * 299900)  # the rest of the body is read and dropped
        sock.sendall(b"GET /pid HTTP/1.1\r\nhost: t\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == 200 and b"pid" in body


# --- Starlette's accessors, request.url, Catzilla 0.2.3's names --------------------------------

def test_await_body_json_form_in_async_handlers(memory):
    client = memory
    r = client.post("/starlette", json={"a": [1, 2]})
    assert r.json() == {"body": '{"a":[1,2]}', "json": {"a": [1, 2]}, "seed": '{"a":[1,2]}'}
    r = client.post("/starlette/form", data={"k": "v"}, files={"f": ("f.txt", b"data")})
    assert r.json() == {"fields": {"k": "v"}, "files": {"f": ["f.txt"]}, "f": "('f.txt', b'data')"}
    r = client.post("/starlette/form", data={"k": "urlencoded"})
    assert r.json() == {"fields": {"k": "urlencoded"}, "files": {}, "f": None}


def test_request_url_parts(server, client):
    r = client.get("/url/a/b", params={"x": "1", "y": "2"})
    assert r.json() == {"str": f"http://{server.host}:{server.port}/url/a/b?x=1&y=2", "path": "/url/a/b",
                        "query": "x=1&y=2", "scheme": "http", "netloc": f"{server.host}:{server.port}",
                        "hostname": server.host, "port": server.port}
    bare = client.get("/url/c", headers={"host": "example.com"}).json()
    assert (bare["str"], bare["port"], bare["hostname"]) == ("http://example.com/url/c", None, "example.com")


def test_catzilla_0_2_3_text_json_client_ip(memory):
    client = memory
    r = client.post("/compat", content=b"plain words")
    assert r.json() == {"text": "plain words", "json": None, "client_ip": "127.0.0.1", "body_type": "ReadyBytes"}
    # an empty body is {} to request.json(), as 0.2.3 answers it
    assert client.post("/compat").json()["json"] == {}
    assert client.post("/compat", content=b'{"k": 1}').json()["json"] == {"k": 1}
    # and without await in an async handler
    assert client.post("/compat/async", content=b'{"x": 2}').json() == {
        "json": {"x": 2}, "text": '{"x": 2}', "client_ip": "127.0.0.1"}
    assert client.post("/compat/async").json()["json"] == {}


def test_invalid_json_is_400(memory):
    client = memory
    r = client.post("/starlette", content=b"{not json")
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["detail"]
