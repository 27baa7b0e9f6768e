"""Code in a chain of middleware and hooks gets what it would get without one: a current
Task, its own context, the after-hooks, one answer (through the TestClient), admission
control and timeouts (over real servers)."""
from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from conftest import app_client, read_response, run_server

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def server():
    with run_server("chain_app:app", "--threads", "2", "--max-queue", "1") as s:
        yield s


@pytest.fixture(scope="module")
def client():
    with app_client("chain_app:app", threads=2, max_queue=1) as c:
        yield c


def get(server, path: str, **kw) -> httpx.Response:
    return httpx.get(server.url + path, timeout=TIMEOUT, **kw)


def test_a_chain_runs_in_a_task(client):
    assert client.get("/task-features").json() == {"task": True}
    assert client.get("/mw-timeout").text == "ok"


def test_context_variables_stay_with_their_request(client):
    assert client.get("/leak").text == "leaked"
    assert client.get("/read").text == "unset"
    assert client.get("/token").text == "x"  # reset after a suspension works
    assert client.get("/read").text == "unset"


@pytest.mark.parametrize("kind", ["def", "async"])
def test_middleware_sees_the_context_variables_its_handler_set(server, kind):
    # issue 8: what a def handler (or a def hook in its pool job) sets is seen after
    # call_next, as it is for an async def handler; and it stays with its request.
    r = get(server, f"/sets/{kind}")
    assert r.text == "set"
    assert r.headers["x-var"] == f"from-{kind}"
    assert r.headers["x-hook-var"] == "from-hook"
    assert get(server, "/read").text == "unset"


def test_context_variables_set_before_a_def_handler_failed_are_seen_too(server):
    r = get(server, "/sets/def-fails")
    assert r.status_code == 418
    assert r.headers["x-var"] == "from-failed-def"
    assert get(server, "/read").text == "unset"


def test_a_short_circuit_on_a_sync_route_still_runs_every_after_hook(client):
    r = client.get("/sync", params={"short": "1"})
    assert r.text == "short-circuited"
    assert r.headers["x-def-after"] == "1" and r.headers["x-async-after"] == "1"


def test_system_exit_in_a_chain_is_a_500_and_the_connection_goes_on(server):
    with server.connect() as sock:
        sock.settimeout(TIMEOUT)
        # One request at a time: read_response refuses bytes beyond its response, and two
        # pipelined answers may arrive in one segment.
        sock.sendall(b"GET /exit HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock)[0] == 500
        sock.sendall(b"GET /read HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock)[0] == 200


def test_a_def_handler_returning_a_coroutine(client):
    r = client.get("/coroutine")
    assert r.text == "from coroutine" and r.headers["x-def-after"] == "1"


def test_max_queue_applies_to_a_chain_around_a_def_handler(server):
    # Two threads and a queue of one: of eight requests that arrive together, three are
    # taken and five refused. Raw sockets, all connected first, so that the eight arrive
    # together however slowly client threads would start on a loaded machine.
    sockets = [server.connect(timeout=TIMEOUT) for _ in range(8)]
    try:
        started = time.monotonic()
        for sock in sockets:
            sock.sendall(b"GET /slow?seconds=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        statuses = [read_response(sock)[0] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert statuses.count(503) >= 4, statuses
    assert statuses.count(200) >= 2, statuses
    assert time.monotonic() - started < 4


def test_a_timed_out_def_handler_in_a_chain_frees_its_thread():
    with run_server("chain_app:app", "--threads", "2", "--request-timeout", "0.5") as s:
        with concurrent.futures.ThreadPoolExecutor(2) as threads:
            slow = [threads.submit(get, s, "/slow", params={"seconds": 3}) for _ in range(2)]
            assert [f.result().status_code for f in slow] == [504, 504]
        started = time.monotonic()
        assert get(s, "/slow", params={"seconds": 0}).status_code == 200
        assert time.monotonic() - started < 1.5  # a replacement thread took it


def test_limit_concurrency_counts_a_chain_around_a_def_handler_once():
    with run_server("chain_app:app", "--threads", "8", "--limit-concurrency", "4") as s:
        with concurrent.futures.ThreadPoolExecutor(4) as threads:
            statuses = list(threads.map(lambda _: get(s, "/slow", params={"seconds": 0.5}).status_code, range(4)))
        assert statuses == [200] * 4
