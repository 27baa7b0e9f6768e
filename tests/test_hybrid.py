"""The hybrid executor against a real server: `def` handlers in the worker's thread pool,
`async def` handlers on the event loop, classification through wrappers, pool sizing.

App: tests/apps/hybrid_app.py.
"""
from __future__ import annotations

import importlib.util
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import APPS, run_server

_spec = importlib.util.spec_from_file_location("hybrid_app", APPS / "hybrid_app.py")
hybrid_app = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hybrid_app)

TIMEOUT = httpx.Timeout(15.0)


@pytest.fixture(scope="module")
def server():
    # A short graceful timeout only so that a connection left hanging by a failing test
    # cannot stall the teardown.
    with run_server("hybrid_app:app", "--threads", "10", "--graceful-timeout", "3") as s:
        yield s


def get(server, path: str) -> httpx.Response:
    return httpx.get(server.url + path, timeout=TIMEOUT)


def concurrent_get(server, path: str, n: int) -> tuple[float, list[httpx.Response]]:
    """`n` simultaneous requests, each on its own connection; (wall time, responses)."""
    barrier = threading.Barrier(n + 1)

    def one(_: int) -> httpx.Response:
        with httpx.Client(timeout=TIMEOUT) as client:
            barrier.wait(timeout=10)
            return client.get(server.url + path)

    with ThreadPoolExecutor(n) as executor:
        futures = [executor.submit(one, i) for i in range(n)]
        barrier.wait(timeout=10)
        started = time.monotonic()
        responses = [f.result(timeout=30) for f in futures]
        elapsed = time.monotonic() - started
    return elapsed, responses


def wait_for_log(server, text: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = server.logs()
        if text in logs:
            return logs
        time.sleep(0.05)
    return server.logs()


def route_kinds(server) -> dict[str, str]:
    response = get(server, "/stats")
    assert response.status_code == 200
    return {key: value["kind"] for key, value in response.json()["routes"].items()}


# -- where handlers run ------------------------------------------------------------------------

def test_sync_handler_runs_off_the_loop_thread(server):
    response = get(server, "/sync/where")
    assert response.status_code == 200
    body = response.json()
    assert body["tag"] == "sync"
    assert body["on_main"] is False
    assert body["thread"] != body["main"]
    assert body["thread_name"].startswith("catzilla-pool")


@pytest.mark.parametrize("path,tag", [("/async/where", "async"),
                                      ("/async/where-inline", "async-inline")])
def test_async_handler_runs_on_the_main_thread(server, path, tag):
    response = get(server, path)
    assert response.status_code == 200
    body = response.json()
    assert body["tag"] == tag
    assert body["on_main"] is True
    assert body["thread"] == body["main"]
    assert body["thread_name"] == "MainThread"


def test_ten_async_sleeps_finish_together(server):
    elapsed, responses = concurrent_get(server, "/async/sleep", 10)
    assert [r.status_code for r in responses] == [200] * 10
    for r in responses:
        assert r.json()["on_main"] is True
        assert r.json()["slept"] >= 0.49
    # Sequentially this would take 5 s.
    assert elapsed < 1.2, f"10 concurrent 0.5 s async sleeps took {elapsed:.2f} s"


def test_eight_sync_sleeps_overlap_in_the_pool(server):
    elapsed, responses = concurrent_get(server, "/sync/sleep", 8)
    assert [r.status_code for r in responses] == [200] * 8
    bodies = [r.json() for r in responses]
    assert all(b["on_main"] is False for b in bodies)
    # Eight blocking sleeps that overlap must each have had a thread of their own.
    assert len({b["thread"] for b in bodies}) == 8
    assert elapsed < 1.5, f"8 concurrent 0.5 s sync sleeps took {elapsed:.2f} s (4 s sequentially)"


def test_cpu_bound_sync_handler_does_not_stall_the_loop(server):
    with ThreadPoolExecutor(1) as executor:
        spin = executor.submit(get, server, "/sync/spin")
        # Wait until the spin handler is actually running in the pool.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            stats = get(server, "/stats").json()
            if stats["by_kind"]["sync"]["in_flight"] >= 1:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the spinning sync handler never showed up as in flight")
        latencies = []
        with httpx.Client(timeout=TIMEOUT) as client:
            for _ in range(8):
                started = time.monotonic()
                response = client.get(server.url + "/async/ping")
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200
                assert response.json()["pong"] is True
                time.sleep(0.05)
        spin_still_running = not spin.done()
        spun = spin.result(timeout=15)
    assert spin_still_running, "the measurements must overlap the 2 s spin"
    assert spun.status_code == 200
    assert spun.json()["spun"] >= 2.0
    assert spun.json()["on_main"] is False
    median = statistics.median(latencies)
    assert median < 0.3, f"async latency during a CPU-bound sync handler: {latencies}"
    assert max(latencies) < 1.0, f"async latency during a CPU-bound sync handler: {latencies}"


# -- classification ------------------------------------------------------------------------

@pytest.mark.parametrize("path,tag", [
    ("/cls/partial-async", "partial-async"),
    ("/cls/bound-async", "bound-async"),
    ("/cls/callable-async", "async-callable"),
])
def test_wrapped_coroutine_functions_run_on_the_loop(server, path, tag):
    response = get(server, path)
    assert response.status_code == 200
    body = response.json()
    assert body["tag"] == tag
    assert body["on_main"] is True
    assert route_kinds(server)[f"GET {path}"] == "async"


@pytest.mark.parametrize("path,tag", [
    ("/cls/plain-sync", "plain-sync"),
    ("/cls/partial-sync", "partial-sync"),
    ("/cls/callable-sync", "sync-callable"),
])
def test_plain_callables_run_in_the_pool(server, path, tag):
    response = get(server, path)
    assert response.status_code == 200
    body = response.json()
    assert body["tag"] == tag
    assert body["on_main"] is False
    assert body["thread_name"].startswith("catzilla-pool")
    assert route_kinds(server)[f"GET {path}"] == "sync"


def test_def_returning_a_coroutine_is_awaited_and_warned_once(server):
    for _ in range(3):
        response = get(server, "/cls/returns-coroutine")
        assert response.status_code == 200
        body = response.json()
        assert body["tag"] == "returned-coroutine"
        assert body["on_main"] is True  # the coroutine ran on the loop, not in the pool
    logs = wait_for_log(server, "returned an awaitable")
    warning = "handler for GET /cls/returns-coroutine is a plain callable that returned an awaitable"
    assert logs.count(warning) == 1, logs
    assert logs.count("returned an awaitable") == 1
    line = next(l for l in logs.splitlines() if warning in l)
    assert "[WARNING]" in line
    assert "coroutine was never awaited" not in logs


def test_startup_log_counts_sync_and_async_routes(server):
    logs = wait_for_log(server, "routes: ")
    expected = (f"routes: {hybrid_app.EXPECTED_SYNC_ROUTES} sync, "
                f"{hybrid_app.EXPECTED_ASYNC_ROUTES} async")
    assert expected in logs, logs
    assert "pool of 10 threads" in logs
    kinds = route_kinds(server)
    assert sum(k == "sync" for k in kinds.values()) == hybrid_app.EXPECTED_SYNC_ROUTES
    assert sum(k == "async" for k in kinds.values()) == hybrid_app.EXPECTED_ASYNC_ROUTES


# -- context variables ---------------------------------------------------------------------

def test_context_variables_reach_the_pool_thread(server):
    response = get(server, "/sync/context")
    assert response.status_code == 200
    body = response.json()
    assert body["on_main"] is False
    assert body["module"] == "module-level"
    assert body["startup"] == "from-startup"


def test_context_variables_on_the_loop(server):
    response = get(server, "/async/context")
    assert response.status_code == 200
    body = response.json()
    assert body["on_main"] is True
    assert body["module"] == "module-level"
    assert body["startup"] == "from-startup"


# -- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("path,message", [
    ("/sync/boom", "RuntimeError: sync handler exploded on purpose"),
    ("/async/boom", "ValueError: async handler exploded on purpose"),
])
def test_handler_exception_leaves_the_server_serving(server, path, message):
    pid_before = get(server, "/sync/where").json()["pid"]
    response = get(server, path)
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert "exploded" not in response.text
    logs = wait_for_log(server, message)
    assert f"Exception in handler for GET {path}" in logs
    assert message in logs
    assert "Traceback (most recent call last)" in logs
    # Same worker, still serving both kinds.
    sync_after = get(server, "/sync/where")
    async_after = get(server, "/async/where")
    assert sync_after.status_code == 200 and async_after.status_code == 200
    assert sync_after.json()["pid"] == pid_before == async_after.json()["pid"]
    assert server.proc.poll() is None


@pytest.mark.parametrize("path", ["/sync/unserialisable", "/async/unserialisable",
                                  "/async/unserialisable-inline"])
def test_unserialisable_return_value_is_a_500(server, path):
    pid_before = get(server, "/sync/where").json()["pid"]
    try:
        response = httpx.get(server.url + path, timeout=3.0)
    except httpx.ReadTimeout:
        pytest.fail(f"GET {path}: no response at all (the connection hangs)")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert "Opaque" not in response.text
    logs = wait_for_log(server, f"Exception in handler for GET {path}")
    assert f"Exception in handler for GET {path}" in logs
    assert get(server, "/sync/where").json()["pid"] == pid_before


# Kept last among the tests of the shared server: when they fail, the worker is replaced.
@pytest.mark.parametrize("path", ["/sync/exit", "/async/exit"])
def test_system_exit_in_a_handler_is_a_500_not_a_dead_worker(server, path):
    pid_before = get(server, "/sync/where").json()["pid"]
    try:
        response = httpx.get(server.url + path, timeout=3.0)
    except httpx.HTTPError as exc:
        pytest.fail(f"GET {path}: no response ({exc!r})")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    after = httpx.get(server.url + "/sync/where", timeout=10.0)  # waits out a respawn
    assert after.status_code == 200
    assert after.json()["pid"] == pid_before, "the worker died and was replaced"


# -- pool size -------------------------------------------------------------------------------

def assert_pool_of(server, size: int) -> None:
    logs = wait_for_log(server, f"pool of {size} threads")
    assert f"pool of {size} threads" in logs, logs
    assert get(server, "/stats").json()["thread_pool"]["size"] == size
    # size + 2 concurrent 0.5 s sleeps: the first `size` overlap, the other two wait a round.
    elapsed, responses = concurrent_get(server, "/sync/sleep", size + 2)
    assert [r.status_code for r in responses] == [200] * (size + 2)
    assert len({r.json()["thread"] for r in responses}) == size
    assert elapsed >= 0.95, f"{size + 2} sleeps in a pool of {size} took only {elapsed:.2f} s"
    assert elapsed < 2.5, f"{size + 2} sleeps in a pool of {size} took {elapsed:.2f} s"


def test_threads_flag_is_honoured():
    with run_server("hybrid_app:app", "--threads", "3") as s:
        assert_pool_of(s, 3)


def test_catzilla_threads_env_var_works_like_the_flag():
    with run_server("hybrid_app:app", env={"CATZILLA_THREADS": "2"}) as s:
        assert_pool_of(s, 2)


def test_threads_flag_beats_the_env_var():
    with run_server("hybrid_app:app", "--threads", "3", env={"CATZILLA_THREADS": "1"}) as s:
        logs = wait_for_log(s, "pool of ")
        assert "pool of 3 threads" in logs, logs
        assert get(s, "/stats").json()["thread_pool"]["size"] == 3
