"""Lifespan and state: `Catzilla(lifespan=...)`, `request.state`, `app.state`,
`@app.on_server_start`, on real `catzilla run` servers (tests/apps/lifespan_*.py), and
through the TestClient (the same worker in memory) where no process or signal is involved.

The apps append "<event> <pid>" lines to a file named by LIFESPAN_EVENTS, so a test can see
what ran, where and in which order, also after the server is gone.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import ROOT, app_client, free_port, run_server, wait_for, wait_listening
from test_master import clean_env, launch, wait_log

TIMEOUT = 10.0


@pytest.fixture
def events() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="catzilla-lifespan-") as tmp:
        yield Path(tmp) / "events"


def lines(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(event, int(pid)) for event, pid in (line.split() for line in path.read_text().splitlines())]


def named(path: Path, event: str) -> list[int]:
    return [pid for name, pid in lines(path) if name == event]


def run_to_exit(target: str, *args: str, env: dict[str, str]) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "catzilla", "run", target, "--host", "127.0.0.1",
           "--port", str(free_port()), *args]
    done = subprocess.run(cmd, cwd=ROOT, env={**clean_env(), **env}, capture_output=True,
                          text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


# -- request.state from the lifespan -------------------------------------------------------------


def test_lifespan_state_is_request_state_in_async_and_sync_handlers(events: Path) -> None:
    with app_client("lifespan_app:app", env={"LIFESPAN_EVENTS": str(events)}) as client:
        a = client.get("/state-async").json()
        b = client.get("/state-sync").json()
    assert a["db"] == {"name": "the-pool", "pid": a["pid"]}
    assert a["counter"] == 1
    assert b["db"] == a["db"] and b["counter"] == 1


def test_each_request_gets_a_shallow_copy_of_the_lifespan_state(events: Path) -> None:
    with app_client("lifespan_app:app", env={"LIFESPAN_EVENTS": str(events)}) as client:
        assert client.get("/mutate").json() == {"counter": 99}
        # Attributes set on one request's state are its own...
        assert client.get("/extra").json() == {"has_extra": False, "counter": 1}
        # ...the objects the lifespan yielded are shared (Starlette's rule).
        assert client.get("/state-async").json()["seen"] == ["mutated"]


def test_lifespan_exit_runs_when_the_worker_stops_then_on_shutdown(events: Path) -> None:
    with run_server("lifespan_app:app", "--workers", "2", env={"LIFESPAN_EVENTS": str(events)}) as s:
        wait_log(s, "2 worker(s) ready")
        with httpx.Client(base_url=s.url, timeout=TIMEOUT) as client:
            assert client.get("/state-async").status_code == 200
        workers = set(named(events, "lifespan-enter"))
        assert len(workers) == 2
        assert not named(events, "lifespan-exit")  # still serving
        assert s.stop() == 0
    assert set(named(events, "lifespan-exit")) == workers
    assert set(named(events, "shutdown")) == workers
    for pid in workers:  # the documented order, per worker
        order = [event for event, p in lines(events) if p == pid]
        assert order == ["startup", "lifespan-enter", "lifespan-exit", "shutdown"], order


def test_sync_contextmanager_lifespan(events: Path) -> None:
    with run_server("lifespan_sync:app", env={"LIFESPAN_EVENTS": str(events)}) as s:
        with httpx.Client(base_url=s.url, timeout=TIMEOUT) as client:
            assert client.get("/kind").json() == {"kind": "sync", "client": "sync-client"}
            assert client.get("/kind-async").json() == {"kind": "sync"}
        assert not named(events, "sync-exit")
        assert s.stop() == 0
    assert len(named(events, "sync-exit")) == 1


def test_without_lifespan_request_state_starts_empty() -> None:
    with app_client("lifespan_sync:plain") as client:
        assert client.get("/state").json() == {"attrs": ["mine"]}
        assert client.get("/state").json() == {"attrs": ["mine"]}


# -- app.state and request.app -------------------------------------------------------------------


def test_app_state_is_shared_through_request_app(events: Path) -> None:
    with app_client("lifespan_app:app", env={"LIFESPAN_EVENTS": str(events)}) as client:
        body = client.get("/app-state").json()
    assert body == {"same_app": True, "at_import": "set-at-import",
                    "from_startup": f"worker-{body['pid']}", "pid": body["pid"]}


# -- on_server_start -----------------------------------------------------------------------------


@pytest.mark.parametrize("preload", [False, True], ids=["import-per-worker", "preload"])
def test_on_server_start_runs_once_before_any_worker_and_not_on_hup(events: Path, preload: bool) -> None:
    args = ["--workers", "3"] + (["--preload"] if preload else [])
    with run_server("lifespan_app:app", *args, env={"LIFESPAN_EVENTS": str(events)}) as s:
        wait_log(s, "3 worker(s) ready")
        assert len(named(events, "server-start")) == 1
        # Before any worker started, in a process that is not a worker.
        assert lines(events)[0][0] == "server-start"
        starter = named(events, "server-start")[0]
        assert starter not in named(events, "startup")
        assert (starter == s.proc.pid) is preload  # --preload: the master itself
        assert len(named(events, "startup")) == 3
        os.kill(s.proc.pid, signal.SIGHUP)
        wait_log(s, "reload complete: generation 2 serving")
        wait_for(lambda: len(named(events, "startup")) == 6, 10, message="6 startups")
        assert len(named(events, "server-start")) == 1  # not again on a reload
        assert s.stop() == 0


def test_on_server_start_with_app_listen_runs_once_before_serving(events: Path) -> None:
    port = free_port()
    code = f"from lifespan_app import app; app.listen(port={port})"
    env = {**clean_env(), "LIFESPAN_EVENTS": str(events)}
    with launch([sys.executable, "-c", code], env=env) as (proc, log):
        assert wait_listening("127.0.0.1", port, proc, 20), log.read_text()
        body = httpx.get(f"http://127.0.0.1:{port}/state-sync", timeout=TIMEOUT).json()
        assert body["counter"] == 1
        assert [event for event, _ in lines(events)] == ["server-start", "startup", "lifespan-enter"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert [event for event, _ in lines(events)][-2:] == ["lifespan-exit", "shutdown"]


@pytest.mark.parametrize("preload", [False, True], ids=["import-per-worker", "preload"])
def test_failing_on_server_start_stops_the_server(events: Path, preload: bool) -> None:
    args = ["--workers", "3"] + (["--preload"] if preload else [])
    status, output = run_to_exit("lifespan_app:app", *args,
                                 env={"LIFESPAN_EVENTS": str(events), "SERVER_START_FAIL": "1"})
    assert status == 4, output  # as an app that does not import: no crash loop
    assert "server start failed on purpose" in output
    assert "an on_server_start hook failed" in output
    assert "started worker" not in output
    assert not named(events, "startup")


# -- lifespan start-up failures ------------------------------------------------------------------


@pytest.mark.parametrize("target, needle", [
    ("lifespan_app:app", "lifespan failed on purpose"),
    ("lifespan_sync:app", "sync lifespan failed on purpose"),
])
def test_failing_lifespan_startup_stops_the_server(target: str, needle: str) -> None:
    status, output = run_to_exit(target, "--workers", "2", env={"LIFESPAN_FAIL": "1"})
    assert status == 3, output  # as a failing on_startup hook: gunicorn's "worker boot error"
    assert needle in output
    assert "failed on startup" in output
    assert f"the application '{target}' did not boot" in output
    assert "serving on" not in output
