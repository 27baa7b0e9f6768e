"""Every route of examples/hybrid.py (the seed guide's app), served by a real
`catzilla run hybrid:app`, plus `python examples/hybrid.py` itself (app.listen)."""
from __future__ import annotations

import http.server
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import EXAMPLES, ROOT, free_port, run_server, wait_for, wait_listening

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def server_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="module")
def server(upload_dir, server_tmp):
    # TMPDIR: the example's save_report_to_file() writes with tempfile.mkstemp()
    env = {"CATZILLA_EXAMPLE_UPLOADS": str(upload_dir), "TMPDIR": str(server_tmp)}
    with run_server("hybrid:app", "--workers", "2", "--threads", "8", env=env) as s:
        # Listening is not serving: the timing tests below must not count the workers' boot.
        wait_for(lambda: "2 worker(s) ready" in s.logs(), 30, message="2 workers ready")
        yield s


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


def primes_below(n: int) -> list[int]:
    return [i for i in range(2, n) if all(i % d for d in range(2, int(math.isqrt(i)) + 1))]


# --- How it works ---------------------------------------------------------------------------

def test_sync(client):
    r = client.get("/sync")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"type": "sync", "execution": "thread_pool"}


def test_async(client):
    t0 = time.monotonic()
    r = client.get("/async")
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    assert r.json() == {"type": "async", "execution": "event_loop"}
    assert elapsed >= 0.09  # the handler really awaited its 0.1 s sleep


# --- CPU-bound ------------------------------------------------------------------------------

def test_compute_prime_default(client):
    r = client.get("/compute-prime")
    assert r.status_code == 200
    body = r.json()
    assert body["primes"] == primes_below(100)
    assert body["count"] == 25
    assert body["handler_type"] == "sync" and body["execution"] == "thread_pool"
    assert re.fullmatch(r"\d+\.\d{3}s", body["execution_time"])


def test_compute_prime_n30(client):
    r = client.get("/compute-prime", params={"n": 30})
    assert r.status_code == 200
    assert r.json()["primes"] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
    assert r.json()["count"] == 10


def test_compute_prime_bounds_inclusive(client):
    assert client.get("/compute-prime", params={"n": 2}).json()["primes"] == []
    r = client.get("/compute-prime", params={"n": 10000})
    assert r.status_code == 200
    assert r.json()["count"] == 1229


@pytest.mark.parametrize("n, kind, limit, ctx_key", [
    (1, "greater_than_equal", 2, "ge"),
    (20000, "less_than_equal", 10000, "le"),
])
def test_compute_prime_out_of_range(client, n, kind, limit, ctx_key):
    r = client.get("/compute-prime", params={"n": n})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/json"
    (error,) = r.json()["detail"]
    assert error["type"] == kind
    assert error["loc"] == ["query", "n"]
    assert error["input"] == str(n)
    assert error["ctx"] == {ctx_key: limit}
    assert isinstance(error["msg"], str) and str(limit) in error["msg"]


def test_compute_prime_not_an_int(client):
    r = client.get("/compute-prime", params={"n": "many"})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["type"] == "int_parsing"
    assert error["loc"] == ["query", "n"]
    assert error["input"] == "many"


def test_process_data(client):
    payload = {"data": [{"id": 1, "value": 10}, {"id": 2, "value": 3.5}, {"id": 3}]}
    r = client.post("/process-data", json=payload)
    assert r.status_code == 200
    assert r.json() == {
        "processed_items": [
            {"id": 1, "processed_value": 15.0, "category": "processed", "score": 20},
            {"id": 2, "processed_value": 5.25, "category": "processed", "score": 7.0},
            {"id": 3, "processed_value": 0, "category": "processed", "score": 0},
        ],
        "total": 3,
        "handler_type": "sync",
    }


def test_process_data_empty_body(client):
    r = client.post("/process-data")
    assert r.status_code == 200
    assert r.json() == {"processed_items": [], "total": 0, "handler_type": "sync"}


# --- I/O-bound ------------------------------------------------------------------------------

def test_fetch_user_data_concurrent(client):
    t0 = time.monotonic()
    r = client.get("/fetch-user-data", params={"user_id": 3})
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == {"id": 3, "name": "User 3"}
    assert body["posts"] == [{"id": i, "title": f"Post {i}"} for i in range(3)]
    assert body["external"] == {"external_score": 95, "verified": True}
    total = float(body["total_time"].rstrip("s"))
    # gathered: ~0.2 s (the longest sleep), not 0.45 s
    assert 0.19 <= total < 0.4
    assert elapsed < 0.45 * 0.9
    assert body["sequential_would_be"] == "0.45s"
    assert body["handler_type"] == "async" and body["execution"] == "concurrent"


def test_fetch_user_data_requires_user_id(client):
    r = client.get("/fetch-user-data")
    assert r.status_code == 422
    assert r.json() == {"detail": [{"type": "missing", "loc": ["query", "user_id"],
                                    "msg": "Field required", "input": None}]}


def test_send_notifications(client):
    notes = [{"id": i, "type": kind} for i, kind in enumerate(["email", "sms", "push", "email", "sms"])]
    t0 = time.monotonic()
    r = client.post("/send-notifications", json=notes)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    assert r.json() == {
        "sent": 5,
        "results": [{"id": n["id"], "status": "sent", "type": n["type"]} for n in notes],
        "handler_type": "async",
        "execution": "concurrent",
    }
    assert elapsed < 0.6 * 0.5  # five 0.1 s sends overlap


def test_send_notifications_body_must_be_a_list(client):
    r = client.post("/send-notifications", json={"id": 1, "type": "email"})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body"]
    assert error["type"] == "list_type"


# --- Mixed workloads --------------------------------------------------------------------------

def test_analyze_user(client):
    r = client.get("/analyze-user", params={"user_id": 3})
    assert r.status_code == 200
    events = [(3 * (day + 3)) % 17 for day in range(7)]
    assert r.json() == {
        "user_id": 3,
        "analysis": {"total_events": sum(events), "busiest_day": events.index(max(events)),
                     "mean_events": round(sum(events) / 7, 2)},
        "recommendations": ["User 3 is very active: suggest the power-user plan"],
        "handler_type": "async",
    }


def test_process_report(client, server_tmp):
    before = set(server_tmp.glob("catzilla-report-*.json"))
    r = client.post("/process-report", json={"values": [1, 2, "skip", 3, 4.0]})
    assert r.status_code == 200
    processed = [1.5, 3.0, 4.5, 6.0]
    assert r.json() == {
        "statistics": {"count": 4, "sum": sum(processed), "mean": statistics.fmean(processed),
                       "stdev": pytest.approx(statistics.pstdev(processed))},
        "processed_items": 4,
        "handler_type": "sync",
    }
    (report,) = set(server_tmp.glob("catzilla-report-*.json")) - before
    assert json.loads(report.read_text()) == processed


def test_process_report_body_must_be_an_object(client):
    r = client.post("/process-report", json=[1, 2])
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body"] and error["type"] == "dict_type"


# --- Advanced patterns ------------------------------------------------------------------------

def test_concurrent_demo(server):
    # The clients are made before the clock starts: making one (its TLS context) takes
    # longer than the handler's sleep on a loaded machine.
    ids = ["req-a", "req-b", "req-c"]
    clients = [httpx.Client(base_url=server.url, timeout=TIMEOUT) for _ in ids]

    def call(pair: tuple[httpx.Client, str]) -> tuple[int, dict]:
        c, request_id = pair
        r = c.get("/concurrent-demo", headers={"X-Request-ID": request_id})
        return r.status_code, r.json()

    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(call, zip(clients, ids)))
        elapsed = time.monotonic() - t0
    finally:
        for c in clients:
            c.close()
    for request_id, (status, body) in zip(ids, results):
        assert status == 200
        assert body == {"request_id": request_id, "message": "This request didn't block others!",
                        "handler_type": "async"}
    assert 0.5 <= elapsed < 0.6 * 3 * 0.5


def test_concurrent_demo_without_header(client):
    assert client.get("/concurrent-demo").json()["request_id"] == "unknown"


def test_upload_file(client, upload_dir):
    data = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n" + os.urandom(1000)
    r = client.post("/upload-file", files={"file": ("photo.bin", data, "application/octet-stream")})
    assert r.status_code == 201
    body = r.json()
    assert body["message"] == "File uploaded successfully"
    assert body["processing"] == "scheduled in background"
    assert body["handler_type"] == "sync"
    info = body["file"]
    assert info["filename"] == "photo.bin"
    assert info["size"] == len(data)
    saved = info["path"]
    assert os.path.dirname(saved) == str(upload_dir)
    assert saved.endswith("-photo.bin")
    with open(saved, "rb") as f:
        assert f.read() == data


def test_upload_file_missing(client):
    r = client.post("/upload-file", files={"other": ("x.txt", b"x")})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["type"] == "missing"
    assert error["loc"][-1] == "file"


@pytest.mark.parametrize("path, kind", [("/sync-error-demo", "Sync"), ("/async-error-demo", "Async")])
def test_error_demos(client, path, kind):
    r = client.get(path, params={"should_fail": "true"})
    assert r.status_code == 400
    assert r.json() == {"error": f"{kind} error occurred"}
    r = client.get(path, params={"should_fail": "false"})
    assert r.status_code == 200
    assert r.json() == {"message": f"{kind} success"}
    r = client.get(path)  # default False
    assert r.status_code == 200
    assert r.json() == {"message": f"{kind} success"}
    r = client.get(path, params={"should_fail": "perhaps"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "should_fail"]
    assert r.json()["detail"][0]["type"] == "bool_parsing"


# --- Performance comparison / migration -------------------------------------------------------

def test_performance_comparison(client):
    r = client.get("/performance-comparison")
    assert r.status_code == 200
    body = r.json()
    assert body["framework"] == "Catzilla"
    assert body["feature"] == "Async/Sync Hybrid"
    assert body["conclusion"] == "Use the right tool for the right job!"
    io = body["results"]["io_bound"]
    assert io["sync_would_take"] == "0.300s"
    assert 0.09 <= float(io["async_actual"].rstrip("s")) < 0.25
    assert body["results"]["cpu_bound"] == {
        "sync_optimal": "0.050s", "async_overhead": "0.060s",
        "recommendation": "Use sync for CPU-bound tasks"}


def expected_dashboard(user_id: int) -> dict:
    return {"user": {"id": user_id, "name": f"User {user_id}"},
            "posts": [{"id": i, "title": f"Post {i} by {user_id}"} for i in range(3)],
            "stats": {"followers": user_id * 7 % 1000, "posts": 3}}


def test_user_dashboard_v1_and_v2(client):
    r1 = client.get("/user-dashboard", params={"user_id": 42})
    assert r1.status_code == 200
    assert r1.json() == {**expected_dashboard(42), "version": "v1_sync"}
    r2 = client.get("/user-dashboard-v2", params={"user_id": 42})
    assert r2.status_code == 200
    assert r2.json() == {**expected_dashboard(42), "version": "v2_async",
                         "performance": "3x faster with concurrent I/O"}
    r = client.get("/user-dashboard", params={"user_id": "x"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "user_id"]


@pytest.mark.parametrize("income, tax", [(50000, 10000.0), (25000, 3000.0), (5000, 0.0), (40000.5, 6000.2)])
def test_calculate_tax(client, income, tax):
    r = client.post("/calculate-tax", params={"income": income})
    assert r.status_code == 200
    assert r.json() == {"tax": tax, "version": "forced_async"}
    r = client.post("/calculate-tax-v2", params={"income": income})
    assert r.status_code == 200
    assert r.json() == {"tax": tax, "version": "optimized_sync", "performance": "Simpler and just as fast"}


def test_calculate_tax_errors(client):
    assert client.get("/calculate-tax", params={"income": 1}).status_code == 405
    r = client.post("/calculate-tax-v2")
    assert r.status_code == 422
    assert r.json()["detail"] == [{"type": "missing", "loc": ["query", "income"],
                                   "msg": "Field required", "input": None}]
    r = client.post("/calculate-tax", params={"income": "lots"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "float_parsing"


# --- Best practices ---------------------------------------------------------------------------

def test_profile(client):
    r = client.get("/profile")
    assert r.status_code == 200
    assert re.fullmatch(r"\d+\.\d{2}ms", r.json()["execution_time"])


def test_good_vs_bad_async_pattern(client):
    def timed(path):
        t0 = time.monotonic()
        r = client.get(path)
        return time.monotonic() - t0, r

    good_t, good = timed("/good-async-pattern")
    bad_t, bad = timed("/bad-async-pattern")
    assert good.status_code == bad.status_code == 200
    assert good.json() == bad.json() == {"sources": [1, 2, 3]}
    assert bad_t >= 0.15  # three sequential 0.05 s fetches
    assert good_t < 0.6 * bad_t


def test_handler_stats(client, server):
    before = client.get("/handler-stats")
    assert before.status_code == 200
    s0 = before.json()
    assert set(s0) >= {"workers", "requests", "by_kind", "routes", "per_worker", "thread_pool"}
    assert s0["workers"] == 2
    assert set(s0["by_kind"]) == {"sync", "async"}
    for kind in ("sync", "async"):
        assert set(s0["by_kind"][kind]) >= {"requests", "errors", "in_flight"}
    assert len(s0["per_worker"]) == 2
    for slot in s0["per_worker"]:
        assert set(slot) >= {"pid", "requests", "in_flight"}
    assert {w["pid"] for w in s0["per_worker"]}.isdisjoint({server.proc.pid})
    assert set(s0["thread_pool"]) >= {"size", "busy", "queued"}
    assert s0["thread_pool"]["size"] == 2 * 8
    route = s0["routes"]["GET /sync"]
    assert route["kind"] == "sync"
    assert set(route) >= {"kind", "requests", "errors", "p50_ms", "p99_ms"}
    assert s0["routes"]["GET /async"]["kind"] == "async"
    assert s0["routes"]["GET /api-gateway/{service}"]["kind"] == "async"
    assert s0["requests"] == sum(w["requests"] for w in s0["per_worker"])

    # fresh connections so that both workers may take some
    for _ in range(6):
        assert httpx.get(server.url + "/sync", timeout=TIMEOUT).status_code == 200
    for _ in range(2):
        assert httpx.get(server.url + "/sync-error-demo", params={"should_fail": "true"},
                         timeout=TIMEOUT).status_code == 400
    s1 = client.get("/handler-stats").json()
    assert s1["routes"]["GET /sync"]["requests"] == route["requests"] + 6
    assert s1["routes"]["GET /sync"]["p50_ms"] is not None
    assert s1["routes"]["GET /sync-error-demo"]["requests"] == \
        s0["routes"]["GET /sync-error-demo"]["requests"] + 2
    # a 400 the handler chose is not a server error
    assert s1["routes"]["GET /sync-error-demo"]["errors"] == \
        s0["routes"]["GET /sync-error-demo"]["errors"]
    # the first /handler-stats call and the 8 above have completed since
    assert s1["requests"] >= s0["requests"] + 9
    assert s1["by_kind"]["sync"]["requests"] >= s0["by_kind"]["sync"]["requests"] + 9
    assert s1["routes"]["GET /handler-stats"]["in_flight"] >= 1  # this very request


def test_api_gateway_proxies_to_upstream(client):
    seen = []

    class Upstream(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Host")))
            body = json.dumps({"service": "inventory", "items": [1, 2, 3], "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    port = upstream.server_address[1]
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        # "{service}.internal" with service = "127.0.0.1:PORT#" is the upstream, fragment ".internal"
        r = client.get(f"/api-gateway/127.0.0.1:{port}%23")
        assert r.status_code == 200
        assert r.json() == {"service": "inventory", "items": [1, 2, 3], "path": "/"}
        assert seen == [("/", f"127.0.0.1:{port}")]
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_api_gateway_unreachable_upstream_is_500(client, server):
    key = "GET /api-gateway/{service}"
    errors_before = client.get("/handler-stats").json()["routes"][key]["errors"]
    port = free_port()  # nothing listens there
    r = client.get(f"/api-gateway/127.0.0.1:{port}%23")
    assert r.status_code == 500
    assert r.json() == {"detail": "Internal Server Error"}
    assert client.get("/sync").status_code == 200
    stats = client.get("/handler-stats").json()
    assert stats["routes"][key]["errors"] == errors_before + 1
    deadline = time.monotonic() + 5
    while "Exception in handler for GET /api-gateway/{service}" not in server.logs() \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Exception in handler for GET /api-gateway/{service}" in server.logs()


def test_process_pipeline(client):
    r = client.post("/process-pipeline", json=[{"a": 1}, {"b": 2}, {"c": [3]}])
    assert r.status_code == 200
    assert r.json() == {"processed": 3}
    r = client.post("/process-pipeline", json={"a": 1})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body"]


# --- Debugging and monitoring -----------------------------------------------------------------

def test_debug_execution_async_vs_sync(client):
    a = client.get("/debug-execution")
    s = client.get("/debug-execution-sync")
    assert a.status_code == s.status_code == 200
    a, s = a.json(), s.json()
    assert a["handler_type"] == "async"
    assert a["is_main_thread"] is True
    assert "running=True" in a["event_loop"]
    assert s == {"handler_type": "sync", "thread_id": s["thread_id"], "is_main_thread": False,
                 "execution_context": "thread_pool"}
    assert isinstance(s["thread_id"], int) and isinstance(a["thread_id"], int)
    assert s["thread_id"] != a["thread_id"]


def test_performance_metrics(client):
    client.get("/sync")
    r = client.get("/performance-metrics")
    assert r.status_code == 200
    body = r.json()
    assert body["recommendations"] == {
        "sync_handlers": "Good for CPU-bound operations",
        "async_handlers": "Good for I/O-bound operations",
        "hybrid_benefit": "Best of both worlds",
    }
    m = body["metrics"]
    assert set(m) >= {"workers", "requests", "by_kind", "routes", "per_worker", "thread_pool",
                      "latency_histograms", "requests_per_second", "loop_lag_ms",
                      "bytes_in", "bytes_out"}
    assert m["workers"] == 2
    assert m["requests"] > 0
    assert m["bytes_in"] > 0 and m["bytes_out"] > 0
    hist = m["latency_histograms"]["GET /sync"]
    assert sum(hist["counts"]) == m["routes"]["GET /sync"]["requests"]
    assert len(hist["counts"]) == len(hist["bucket_upper_bounds_ms"])
    assert isinstance(m["requests_per_second"], (int, float))


def test_unknown_route_is_404(client):
    r = client.get("/no-such-example")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}


# --- python examples/hybrid.py (app.listen) ---------------------------------------------------

def test_script_runs_with_app_listen(tmp_path):
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env["CATZILLA_PORT"] = str(port)
    env["CATZILLA_EXAMPLE_UPLOADS"] = str(tmp_path)
    log = open(tmp_path / "hybrid.log", "wb")
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "hybrid.py")], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_listening("127.0.0.1", port, proc, 20.0), (tmp_path / "hybrid.log").read_text()
        r = httpx.get(f"http://127.0.0.1:{port}/sync", timeout=TIMEOUT)
        assert r.status_code == 200
        assert r.json() == {"type": "sync", "execution": "thread_pool"}
        stats = httpx.get(f"http://127.0.0.1:{port}/handler-stats", timeout=TIMEOUT).json()
        assert stats["workers"] == 1
        assert stats["per_worker"][0]["pid"] == proc.pid  # one process: no master
        assert stats["routes"]["GET /sync"]["requests"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
