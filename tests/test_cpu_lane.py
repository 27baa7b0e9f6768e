"""The CPU lane and the CPU measurement of `def` handlers (issue 12), on real servers.

tests/apps/cpu_app.py has the same handler twice: /pool/{n} in the thread pool and
/lane/{n} with cpu_bound=True; /spin/{ms} computes in the pool, /sleep/{ms} waits there."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from conftest import ROOT, run_server, wait_for

LANE = ("--workers", "1", "--cpu-workers", "1")


def worker_pid(server) -> int:
    return httpx.get(server.url + "/pid").json()["pid"]


def lane_pid(server) -> int | None:
    """The pid of the lane process that answers /lane/0, or None while none does (503)."""
    response = httpx.get(server.url + "/lane/0", timeout=10)
    return response.json()["pid"] if response.status_code == 200 else None


def without_pid(response: httpx.Response) -> tuple[int, dict, dict]:
    body = response.json()
    body.pop("pid", None)
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "content-length")}
    return response.status_code, headers, body


def test_cpu_bound_sync_route_is_flagged_in_stats_metrics_and_logs():
    with run_server("cpu_app:app", "--workers", "1", "--metrics-path", "/metrics") as server:
        # One request computing in the pool at a time (two would share the GIL, and each
        # measure about half CPU: see CPU_BOUND_SHARE), while the loop serves /ping.
        busy = [threading.Thread(target=lambda: [httpx.get(server.url + "/spin/60", timeout=30) for _ in range(24)])]
        busy[0].start()
        for _ in range(40):  # the loop's own requests meanwhile
            httpx.get(server.url + "/ping")
            time.sleep(0.02)
        for _ in range(5):
            httpx.get(server.url + "/sleep/20")
            httpx.get(server.url + "/pool/0")
        for thread in busy:
            thread.join()
        routes = httpx.get(server.url + "/stats").json()["routes"]
        spin = routes["GET /spin/{ms}"]
        assert spin["cpu_bound"] is True, spin
        assert spin["cpu_ms_p50"] >= 30 and spin["cpu_ms_p99"] >= spin["cpu_ms_p50"], spin
        assert spin["cpu_share"] > 0.1
        assert routes["GET /sleep/{ms}"]["cpu_bound"] is False  # 20 ms of waiting, no CPU
        assert routes["GET /sleep/{ms}"]["cpu_share"] < 0.05
        assert routes["GET /pool/{n}"]["cpu_bound"] is False  # all CPU, but microseconds
        assert "cpu_ms_p50" not in routes["GET /ping"]  # async: measured as loop blocking instead
        metrics = httpx.get(server.url + "/metrics").text
        assert 'catzilla_handler_cpu_bound{route="/spin/{ms}",method="GET",kind="sync"} 1' in metrics
        assert 'catzilla_handler_cpu_bound{route="/sleep/{ms}",method="GET",kind="sync"} 0' in metrics
        assert 'catzilla_handler_cpu_seconds_count{route="/spin/{ms}",method="GET",kind="sync"} 24' in metrics
        # One warning for the route, naming the fix.
        logs = wait_for(lambda: server.logs() if "is CPU-bound" in server.logs() else None, 10,
                        message="the CPU-bound warning")
        warnings = [line for line in logs.splitlines() if "is CPU-bound" in line]
        assert len(warnings) == 1 and "GET /spin/{ms}" in warnings[0] and "cpu_bound=True" in warnings[0]
        # catzilla stats shows it too.
        top = subprocess.run([sys.executable, "-m", "catzilla", "stats", "--pid", str(server.proc.pid),
                              "--once", "--interval", "0.1"], capture_output=True, text=True, cwd=ROOT,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=30)
        line = next(line for line in top.stdout.splitlines() if line.startswith("GET /spin/{ms}"))
        assert "CPU-BOUND" in line and "cpu p99" in top.stdout


def test_lane_answers_from_another_process_as_the_pool_would():
    with run_server("cpu_app:app", *LANE) as server:
        worker = worker_pid(server)
        lane = httpx.get(server.url + "/lane/3")
        assert lane.status_code == 200 and lane.json()["pid"] != worker
        pool = httpx.get(server.url + "/pool/3")
        assert pool.json()["pid"] == worker
        # Same status, headers and body, success or not: 422 (bound in the worker), a user's
        # HTTPException with its headers, a handler's bug (500), HEAD.
        for suffix in ("/3", "/3?fail=x", "/abc", "/-1", "/1?fail=crash"):
            assert without_pid(httpx.get(server.url + "/lane" + suffix)) == \
                without_pid(httpx.get(server.url + "/pool" + suffix)), suffix
        # A route with dependencies: its plan runs in the lane process (the 422 of a bad
        # dependency parameter comes from there).
        for suffix in ("/4", "/4?k=3", "/4?k=x"):
            assert without_pid(httpx.get(server.url + "/lane-dep" + suffix)) == \
                without_pid(httpx.get(server.url + "/pool-dep" + suffix)), suffix
        assert httpx.get(server.url + "/lane-dep/4").json()["pid"] != worker
        head_lane, head_pool = httpx.head(server.url + "/lane/2"), httpx.head(server.url + "/pool/2")
        assert head_lane.status_code == head_pool.status_code == 200 and head_lane.content == b""
        assert head_lane.headers["content-length"] == head_pool.headers["content-length"]
        assert "ZeroDivisionError: a bug in the handler" in server.logs()  # logged where it ran
        # The request's data crosses: body, headers, query, client.
        echo = httpx.post(server.url + "/lane-echo?a=1&b=2", content=b"hello lane",
                          headers={"user-agent": "lane-test"}).json()
        assert echo["body"] == "hello lane" and echo["agent"] == "lane-test"
        assert echo["query"] == {"a": "1", "b": "2"} and echo["client"] == "127.0.0.1"
        # Counted as the route's requests, with the lane's CPU time, and the lane's jobs.
        stats = httpx.get(server.url + "/stats").json()
        route = stats["routes"]["GET /lane/{n}"]
        assert route["kind"] == "cpu_lane" and route["requests"] >= 7 and route["cpu_ms_p50"] is not None
        assert stats["cpu_lane"]["processes"] == 1 and stats["cpu_lane"]["jobs"] >= 11  # all but the 422
        assert stats["workers"] == 1


def test_lane_timeout_answers_504_and_frees_the_process():
    with run_server("cpu_app:app", *LANE) as server:
        first = httpx.get(server.url + "/lane/0").json()["pid"]
        started = time.monotonic()
        response = httpx.get(server.url + "/lane-slow", timeout=10)  # timeout=0.5, spins 3 s
        assert response.status_code == 504 and time.monotonic() - started < 2.5
        # The lane process stopped the handler at the deadline: it answers at once, the same one.
        started = time.monotonic()
        again = httpx.get(server.url + "/lane/0", timeout=10)
        assert again.json()["pid"] == first and time.monotonic() - started < 1.0
        assert "ran past its timeout of 0.5 s; stopped" in server.logs()
        assert "answered 504" in server.logs()


def test_killed_lane_process_gives_its_client_a_502_and_is_replaced():
    with run_server("cpu_app:app", *LANE) as server:
        victim = httpx.get(server.url + "/lane/0").json()["pid"]
        result = {}

        def slow() -> None:
            started = time.monotonic()
            result["response"] = httpx.get(server.url + "/lane-spin/20000", timeout=30)
            result["took"] = time.monotonic() - started

        client = threading.Thread(target=slow)
        client.start()
        wait_for(lambda: httpx.get(server.url + "/stats").json()["cpu_lane"]["busy"] == 1, 10,
                 message="the lane busy with the job")
        os.kill(victim, signal.SIGKILL)
        client.join(15)
        assert result["response"].status_code == 502 and result["took"] < 10
        assert result["response"].json() == {"detail": "Bad Gateway"}
        # A replacement takes the next jobs.
        replacement = wait_for(lambda: lane_pid(server), 15, message="a replacement lane process")
        assert replacement != victim
        logs = server.logs()
        assert f"CPU lane process {victim} killed by SIGKILL unexpectedly; replacing it" in logs
        assert "got no answer" in logs and "answered 502" in logs


def test_hup_replaces_the_lane_processes():
    with run_server("cpu_app:app", *LANE) as server:
        old = httpx.get(server.url + "/lane/0").json()["pid"]
        server.proc.send_signal(signal.SIGHUP)

        def new_pid():
            pid = lane_pid(server)
            return pid if pid != old else None

        wait_for(new_pid, 20, interval=0.2, message="a lane process of the new generation")
        wait_for(lambda: f"CPU lane process {old} exited with status 0" in server.logs(), 15,
                 message="the old lane process gone")


def test_no_lane_runs_for_an_app_without_cpu_bound_routes():
    with run_server("stats_app:app", "--workers", "1") as server:
        wait_for(lambda: "no route needs the CPU lane" in server.logs(), 15, message="the lane's probe")
        stats = httpx.get(server.url + "/astats").json()["stats"]
        assert stats["cpu_lane"]["processes"] == 0


def test_cpu_bound_is_refused_where_it_cannot_work():
    from catzilla import Catzilla

    app = Catzilla()
    with pytest.raises(ValueError, match="cpu_bound=True is for a plain `def` handler"):
        @app.get("/x", cpu_bound=True)
        async def handler():
            return {}
    with pytest.raises(ValueError, match="a streamed body or form and file parameters"):
        @app.post("/upload", cpu_bound=True, stream=True)
        def upload(request):
            return {}


def test_auto_cpu_lane_moves_a_measured_cpu_bound_route():
    with run_server("cpu_app:app", *LANE, "--auto-cpu-lane") as server:
        worker = worker_pid(server)

        def moved():
            return httpx.get(server.url + "/pool/30", timeout=10).json()["pid"] != worker

        wait_for(moved, 20, interval=0.1, message="/pool/{n} answered from the CPU lane")
        assert "--auto-cpu-lane: GET /pool/{n} is CPU-bound" in server.logs()
        assert httpx.get(server.url + "/pool/abc").status_code == 422


def test_cpu_counters_add_up_from_many_threads_and_fold_into_the_retired_totals():
    from catzilla.stats import ROLE_LANE, StatsBoard, lane_slots, merge_routes, percentile, worker_slots

    board = StatsBoard.create(4, 2)
    slot = board.attach(0, 1, [("GET /spin", 0), ("GET /lane", 2)])
    lane = board.block.attach(1, 99, 1, [], ROLE_LANE)

    def work() -> None:
        for _ in range(2000):
            slot.cpu(0, 0.003, 0.004)  # 3 ms CPU in 4 ms: bucket 2**12 µs

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slot.cpu(1, 0.0005, 0.01)  # 0.5 ms of CPU in 10 ms: not CPU-bound
    slot.cpu(7, 1.0, 1.0)  # no such route: ignored
    lane.end(-1, lane.begin(-1), 200, 0, 0)  # a lane job: not a request of the totals
    snapshot = board.snapshot()
    assert len(worker_slots(snapshot)) == 1 and len(lane_slots(snapshot)) == 1
    assert board.totals()[0] == 0
    spin = merge_routes(snapshot)["GET /spin"]
    assert spin.cpu_calls == 16000 and spin.cpu_us == 16000 * 3000 and spin.wall_us == 16000 * 4000
    assert spin.cpu_bound and 2.048 <= percentile(spin.cpu_histogram, 0.5) <= 4.096
    assert merge_routes(snapshot)["GET /lane"].kind == "cpu_lane"
    assert not merge_routes(snapshot)["GET /lane"].cpu_bound
    board.retire(0)
    board.retire(1)
    retired = merge_routes(board.snapshot())["GET /spin"]
    assert (retired.cpu_calls, retired.cpu_us) == (16000, 16000 * 3000)
    assert board.totals()[0] == 0


def test_a_lane_process_stuck_holding_the_gil_is_replaced_by_its_heartbeat():
    with run_server("cpu_app:app", *LANE, "--timeout", "2") as server:
        stuck = httpx.get(server.url + "/lane/0").json()["pid"]
        started = time.monotonic()
        response = httpx.get(server.url + "/lane-stuck", timeout=30)
        assert response.status_code == 502 and time.monotonic() - started < 15
        logs = server.logs()
        assert f"CPU lane process {stuck} has not beaten for" in logs
        assert "lane_stuck" in logs  # its stack, dumped before it was replaced
        replacement = wait_for(lambda: lane_pid(server), 15, message="a replacement lane process")
        assert replacement != stuck
