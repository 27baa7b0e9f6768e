"""No request hangs for ever, and an overloaded worker refuses at once instead of queueing
without bound: request timeouts (504), a hung thread pool (readiness 503, stacks logged,
the worker retired and replaced), --max-queue / --queue-timeout / --limit-concurrency (503
with Retry-After).

App: tests/apps/ov_app.py.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from conftest import ROOT, read_response, run_server, wait_for

TIMEOUT = httpx.Timeout(15.0)


def get(server, path: str, timeout: httpx.Timeout = TIMEOUT) -> httpx.Response:
    return httpx.get(server.url + path, timeout=timeout)


# -- a raw HTTP/1.1 client: exact timing, and proof of what else arrives on the connection ----

class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, elapsed: float) -> None:
        self.status, self.headers, self.body, self.elapsed = status, headers, body, elapsed

    def json(self):
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.elapsed * 1000:.0f} ms {self.body[:100]!r}>"


def read_reply(sock: socket.socket, sent_at: float) -> Reply:
    status, headers, body = read_response(sock)
    return Reply(status, headers, body, time.monotonic() - sent_at)


def request(sock: socket.socket, path: str) -> Reply:
    sent_at = time.monotonic()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return read_reply(sock, sent_at)


def simultaneous(server, path: str, n: int) -> list[Reply]:
    """`n` requests sent at the same moment, each on its own connection made beforehand;
    each reply timed from its own send."""
    sockets = [server.connect(timeout=15) for _ in range(n)]
    barrier = threading.Barrier(n)

    def one(sock: socket.socket) -> Reply:
        barrier.wait(timeout=10)
        return request(sock, path)

    try:
        with ThreadPoolExecutor(n) as executor:
            return [f.result(timeout=30) for f in [executor.submit(one, s) for s in sockets]]
    finally:
        for sock in sockets:
            sock.close()


def assert_refused(reply: Reply) -> None:
    assert reply.status == 503, reply
    assert reply.json() == {"detail": "Service Unavailable"}
    assert reply.headers.get("retry-after") == "1", reply.headers


# -- request timeouts ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    # A short graceful timeout: handlers stuck on purpose must not stall the teardown.
    with run_server("ov_app:app", "--threads", "4", "--graceful-timeout", "1") as s:
        yield s


def test_sync_handler_past_its_route_timeout_is_answered_504(server):
    started = time.monotonic()
    response = get(server, "/hang")
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert response.json() == {"detail": "Gateway Timeout"}
    assert 0.9 <= elapsed < 2.5, f"timeout=1.0 answered after {elapsed:.2f} s"
    logs = wait_for(lambda: "GET /hang" in server.logs() and server.logs(), 5, message="a log line")
    assert "timed out" in logs and "GET /hang" in logs, logs
    # The abandoned thread is still stuck; the other sync routes answer meanwhile.
    assert get(server, "/sleep").status_code == 200


def test_add_route_takes_a_timeout_too(server):
    assert get(server, "/added").status_code == 504


def test_async_handler_past_its_timeout_is_cancelled(server):
    before = get(server, "/events").json()["cancelled"]
    started = time.monotonic()
    response = get(server, "/ahang")
    assert response.status_code == 504, response.text
    assert response.json() == {"detail": "Gateway Timeout"}
    assert time.monotonic() - started < 2.5
    wait_for(lambda: get(server, "/events").json()["cancelled"] == before + 1, 3,
             message="the handler's Task cancelled")


def test_a_late_result_is_never_written_and_the_connection_goes_on(server):
    """timeout=0.5, the handler returns after 1.5 s: exactly one response, the 504, and the
    next request on the same keep-alive connection gets its own answer."""
    with server.connect(timeout=10) as sock:
        reply = request(sock, "/late")
        assert reply.status == 504, reply
        assert reply.elapsed < 2.0, reply
        wait_for(lambda: get(server, "/events").json()["late_returned"] >= 1, 5,
                 message="the late handler returned")
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            extra = sock.recv(65536)
            raise AssertionError(f"a second response on the connection: {extra!r}")
        sock.settimeout(10)
        reply = request(sock, "/pid")
        assert reply.status == 200 and "pid" in reply.json(), reply


def test_timeouts_are_counted_as_errors_in_the_stats(server):
    get(server, "/added")
    routes = get(server, "/stats").json()["routes"]
    assert routes["GET /added"]["errors"] >= 1, routes["GET /added"]
    assert routes["GET /added"]["in_flight"] == 0


def test_an_abandoned_thread_is_replaced():
    """One thread, stuck past its request's timeout: a replacement thread serves the next
    sync request (within the bound of `--threads` extra threads)."""
    with run_server("ov_app:app", "--threads", "1", "--graceful-timeout", "1") as s:
        assert get(s, "/hang").status_code == 504
        started = time.monotonic()
        response = get(s, "/sleep")
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 1.0


def test_replacement_threads_are_bounded_and_leave_once_the_abandoned_jobs_return():
    """The pool itself: at most `size` replacement threads however many jobs are abandoned,
    and back to `size` threads once the abandoned jobs have returned."""
    import asyncio

    from catzilla.worker.pool import ThreadPool

    loop = asyncio.new_event_loop()
    release = threading.Event()
    pool = ThreadPool(loop, 2, max_queue=10)
    try:
        for _ in range(2):
            pool.submit(lambda result, error: None, release.wait, 10)
        wait_for(lambda: pool.busy == 2, 5, message="both threads busy")
        for _ in range(5):  # five timed-out requests: only two replacements allowed
            pool.abandon()
        for _ in range(3):
            pool.submit(lambda result, error: None, release.wait, 10)
        wait_for(lambda: pool.busy == 4, 5, message="the replacements busy")
        assert pool.limit == 4 and len(pool._threads) == 4 and pool.queued == 1
        release.set()
        for _ in range(5):
            pool.reclaim()
        wait_for(lambda: len(pool._threads) == 2 and pool.busy == 0, 5, message="back to 2 threads")
        assert pool.limit == 2
    finally:
        release.set()
        pool.shutdown(wait=True)
        loop.close()


def test_request_timeout_flag_and_a_route_without_limit():
    with run_server("ov_app:app", "--request-timeout", "1", "--graceful-timeout", "1") as s:
        started = time.monotonic()
        response = get(s, "/hang-default")
        assert response.status_code == 504, response.text
        assert time.monotonic() - started < 2.5
        # timeout=0 on the route: no limit, whatever the server's default.
        response = get(s, "/no-limit?t=1.5")
        assert response.status_code == 200 and response.json() == {"slept": 1.5}


def test_request_timeout_env_var():
    with run_server("ov_app:app", "--graceful-timeout", "1",
                    env={"CATZILLA_REQUEST_TIMEOUT": "1"}) as s:
        assert get(s, "/hang-default").status_code == 504


def test_hung_pool_goes_unready_logs_stacks_and_the_worker_is_replaced():
    """Every pool thread stuck on one job for longer than --timeout, no request timeout to
    free them: readiness says 503, the threads' stacks are logged, and the master starts a
    new worker."""
    with run_server("ov_app:app", "--threads", "2", "--timeout", "2", "--request-timeout", "0",
                    "--ready-path", "/ready", "--graceful-timeout", "1") as s:
        first = get(s, "/pid").json()["pid"]
        stuck = [s.connect(timeout=30) for _ in range(2)]
        try:
            for sock in stuck:
                sock.sendall(b"GET /stuck HTTP/1.1\r\nHost: test\r\n\r\n")
            statuses = []
            with s.connect(timeout=10) as probe:
                # One keep-alive connection, asked every 0.2 s: it sees the 503 before the
                # worker's drain closes it.
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    try:
                        reply = request(probe, "/ready")
                    except (ConnectionError, OSError):
                        break
                    statuses.append(reply.status)
                    if reply.status == 503:
                        assert reply.json()["status"] == "stuck", reply
                        break
                    time.sleep(0.2)
            assert 503 in statuses, statuses
            assert statuses[0] == 200, statuses
            logs = wait_for(lambda: "stuck" in s.logs() and "RELEASE.wait" in s.logs() and s.logs(),
                            5, message="the stuck threads' stacks in the log")
            assert "ov_app.py" in logs and "in stuck" in logs, logs
            second = wait_for(lambda: _pid_or_none(s) not in (None, first) and _pid_or_none(s), 15,
                              interval=0.2, message="a new worker")
            assert second != first
        finally:
            for sock in stuck:
                sock.close()


def _pid_or_none(server) -> int | None:
    try:
        return get(server, "/pid", timeout=httpx.Timeout(2.0)).json()["pid"]
    except httpx.HTTPError:
        return None


# -- admission control --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/sleep?t=0.3", "/nap"])  # through Executor.start, and straight
def test_max_queue_refuses_the_excess_at_once(path):
    """2 threads, 2 places in the queue, 12 simultaneous 0.3 s requests: 4 are served, the
    others are answered 503 with Retry-After at once."""
    with run_server("ov_app:app", "--threads", "2", "--max-queue", "2") as s:
        get(s, "/sleep")  # the pool's first thread exists
        replies = simultaneous(s, path, 12)
        served = [r for r in replies if r.status == 200]
        refused = [r for r in replies if r.status != 200]
        assert len(served) >= 4 and len(refused) >= 4, replies
        assert len(served) <= 6, replies  # 4 when all arrive together; a straggler may fit
        for reply in refused:
            assert_refused(reply)
            # Answered at once: ~1 ms on an idle machine; the bound allows for a busy one.
            assert reply.elapsed < 0.15, reply
        assert all(r.elapsed >= 0.29 for r in served), served


def test_queue_timeout_answers_a_job_that_waited_too_long_503():
    """One thread, 1 s jobs, --queue-timeout 0.5: the first is served; the two that waited a
    second for the thread are answered 503 instead of run."""
    with run_server("ov_app:app", "--threads", "1", "--max-queue", "10", "--queue-timeout", "0.5") as s:
        get(s, "/sleep")
        replies = simultaneous(s, "/sleep?t=1", 3)
        assert sorted(r.status for r in replies) == [200, 503, 503], replies
        for reply in replies:
            if reply.status == 503:
                assert_refused(reply)
                assert reply.elapsed < 1.8, reply  # not run: no second sleep


def test_limit_concurrency_counts_async_requests_too():
    with run_server("ov_app:app", "--limit-concurrency", "2") as s:
        with ThreadPoolExecutor(2) as executor:
            slow = [executor.submit(get, s, "/asleep?t=1.5") for _ in range(2)]
            wait_for(lambda: get(s, "/stats").status_code == 503, 5, interval=0.05,
                     message="2 requests in flight")
            with s.connect() as sock:
                reply = request(sock, "/pid")
                assert_refused(reply)
                assert reply.elapsed < 0.15, reply
            assert [f.result(10).status_code for f in slow] == [200, 200]
        assert get(s, "/pid").status_code == 200


def test_overload_settings_are_validated():
    for flag in ("--request-timeout", "--queue-timeout", "--max-queue", "--limit-concurrency"):
        result = subprocess.run([sys.executable, "-m", "catzilla", "run", "ov_app:app", flag, "-1"],
                                cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (flag, result.stdout, result.stderr)
        assert f"{flag.lstrip('-')} must not be negative" in result.stderr, (flag, result.stderr)


def test_a_negative_route_timeout_is_refused_at_registration():
    from catzilla import Catzilla

    app = Catzilla()
    with pytest.raises(ValueError, match="timeout"):
        app.get("/x", timeout=-1)(lambda request: None)
