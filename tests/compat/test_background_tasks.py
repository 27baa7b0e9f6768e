"""app.enable_background_tasks / add_task / @app.task: 0.2.3's task engine, over a real server."""
from __future__ import annotations

import signal

from compat_support import compat_client
from conftest import wait_for


def test_results_priorities_retries_timeouts_and_stats(tmp_path):
    with compat_client("tasks_app:app", "--threads", "4", env={"TASKS_LOG": str(tmp_path / "log")}) as client:
        r = client.post("/add", json={"a": 2, "b": 3})
        assert r.status_code == 202
        body = r.json()
        assert body["result"]["sum"] == 5 and body["status"] == "COMPLETED"
        assert body["result"]["thread"].startswith("catzilla-task-")
        assert client.get("/fetch").json() == {"result": "fetched", "timed_out": True}
        assert client.get("/retries").json() == {
            "flaky": 3, "attempts": 2, "error": "always", "status": "FAILED", "looked_up": True}
        stats = client.get("/stats").json()
        assert stats["processed"] >= 5 and stats["failed"] >= 2 and stats["retries"] >= 3
        assert stats["workers"] == 2 and stats["memory_usage_mb"] > 1
        assert "task" in client.server.logs() and "ValueError: always" in client.server.logs()


def test_queued_tasks_run_before_a_worker_stops(tmp_path):
    log = tmp_path / "log"
    with compat_client("tasks_app:app", env={"TASKS_LOG": str(log)}) as client:
        for n in range(3):
            assert client.post("/slow", json={"text": f"t{n}"}).json() == {"queued": True}
        assert client.server.stop(signal.SIGTERM) == 0
    assert sorted(log.read_text().split()) == ["t0", "t1", "t2"]
