"""Slow and stalled clients, draining and counting: nothing holds a connection or memory for
ever, and every request is counted once. Real servers, raw sockets."""
from __future__ import annotations

import os
import signal
import socket
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import run_server

TIMEOUT = 5.0


def rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def worker_pid(server) -> int:
    return httpx.get(server.url + "/pid", timeout=TIMEOUT).json()["pid"]


def stalled_client(server, path: str) -> socket.socket:
    sock = server.connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # take almost nothing
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[int, bool]:
    """Bytes read, and whether the server closed (EOF or reset) within `timeout`."""
    sock.settimeout(0.5)
    deadline, total = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return total, True
        if not chunk:
            return total, True
        total += len(chunk)
    return total, False


def test_stalled_readers_are_closed_and_their_memory_comes_back():
    with run_server("hardening_app:app", "--write-timeout", "2", "--no-access-log") as server:
        pid = worker_pid(server)
        before = rss_mib(pid)
        clients = [stalled_client(server, "/big") for _ in range(24)]  # 8 MiB each
        time.sleep(1.0)
        assert rss_mib(pid) > before + 100  # the responses are buffered for them meanwhile
        time.sleep(3.5)  # past --write-timeout, and a tick
        assert rss_mib(pid) < before + 40, "buffered responses of closed connections stay in memory"
        for sock in clients:
            received, closed = read_until_closed(sock, TIMEOUT)
            assert closed and received < 8 * 1024 * 1024
            sock.close()
        assert httpx.get(server.url + "/pid", timeout=TIMEOUT).status_code == 200
        assert "took no response bytes" in server.logs()


def test_a_stream_to_a_stalled_reader_is_cut_off():
    with run_server("hardening_app:app", "--write-timeout", "2") as server:
        sock = stalled_client(server, "/endless")
        time.sleep(4.0)
        _, closed = read_until_closed(sock, TIMEOUT)
        sock.close()
        assert closed, "an endless stream to a reader that takes nothing was never cut off"


def test_a_slow_reader_that_keeps_reading_is_not_cut_off():
    with run_server("hardening_app:app", "--write-timeout", "2") as server:
        sock = stalled_client(server, "/big?size=300000")
        sock.settimeout(TIMEOUT)
        received, started = 0, time.monotonic()
        while received < 300_000 and time.monotonic() - started < 30:
            chunk = sock.recv(4096)
            assert chunk, "closed while the client was reading"
            received += len(chunk)
            time.sleep(0.01)
        sock.close()
        assert received > 300_000
        assert time.monotonic() - started > 2  # slower than --write-timeout overall


def test_a_body_trickling_under_the_minimum_rate_gets_408():
    with run_server("hardening_app:app", "--min-body-rate", "100", "--body-rate-grace", "1") as server:
        with server.connect() as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
            started, answer = time.monotonic(), b""
            sock.settimeout(0.5)
            while time.monotonic() - started < 8 and not answer:
                try:
                    sock.sendall(b"x")
                    answer = sock.recv(65536)
                except socket.timeout:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
            elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert elapsed < 5


def test_a_body_at_a_steady_rate_is_read():
    with run_server("hardening_app:app", "--min-body-rate", "100", "--body-rate-grace", "1") as server:
        with server.connect() as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 600\r\n\r\n")
            for _ in range(6):  # 200 B/s for 3 s
                time.sleep(0.5)
                sock.sendall(b"y" * 100)
            sock.settimeout(TIMEOUT)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_a_draining_worker_answers_a_reused_idle_connection():
    """HUP: the old worker keeps idle keep-alive connections for their keep-alive time, so
    a client that pauses and reuses one gets an answer (with connection: close)."""
    with run_server("hardening_app:app", "--keep-alive-timeout", "5") as server:
        old = worker_pid(server)
        with server.connect() as sock:
            sock.settimeout(TIMEOUT)
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: a\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            os.kill(server.proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 20
            while worker_pid(server) == old and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.5)  # the pause of a pooling client, past the old 1 s drain grace
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: a\r\n\r\n")
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert b"connection: close" in answer.lower()


def requests_total(server) -> dict[tuple[str, str], float]:
    text = httpx.get(server.url + "/metrics", timeout=TIMEOUT).text
    return {(s.labels["method"], s.labels["route"]): s.value
            for family in text_string_to_metric_families(text) if family.name == "catzilla_requests"
            for s in family.samples if s.name == "catzilla_requests_total"}


def test_every_request_is_counted_also_unmatched_and_probes():
    with run_server("hardening_app:app", "--metrics-path", "/metrics", "--health-path", "/health") as server:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            for _ in range(5):
                assert client.get("/pid").status_code == 200
            for _ in range(4):
                assert client.get("/nowhere").status_code == 404
            for _ in range(3):
                assert client.post("/pid").status_code == 405
            for _ in range(2):
                assert client.get("/health").status_code == 200
        with server.connect() as sock:  # refused before any route: counted too
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: a b\r\n\r\n")
            sock.settimeout(TIMEOUT)
            assert sock.recv(65536).startswith(b"HTTP/1.1 400")
        totals = requests_total(server)
        assert totals[("GET", "/pid")] == 5
        # 4 + 3 + 2 + 1, and the /metrics request itself is not answered yet when it counts.
        assert totals[("*", "<unmatched>")] == 10
        assert sum(totals.values()) == 15
