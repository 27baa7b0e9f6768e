"""The prefork master (catzilla/master/) and the worker's side of supervision.

Every test drives a real `catzilla run` master with real workers over real sockets. The
port accepts as soon as the master has bound it, before any worker serves, so tests wait
for the master's "N worker(s) ready" line (or a worker's "serving on" line) rather than
for the port. Worker pids come from the app (/pid) and from the master's children in /proc.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from conftest import (APPS, EXAMPLES, ROOT, Server, free_port, read_response, run_server, stop_process, wait_for,
                      wait_listening)

APP = "master_app:app"
TIMEOUT = 10.0  # every client call


# -- helpers -------------------------------------------------------------------------------


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (zombies excluded)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    alive = set()
    for child in map(int, text.split()):
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.add(child)
    return alive


def serving(logs: str, pid: int) -> bool:
    return f"worker {pid} serving on" in logs


def wait_workers(server: Server, count: int, timeout: float = 20.0) -> set[int]:
    """Wait until the master has exactly `count` children and every one of them serves."""
    def check() -> set[int] | None:
        assert server.proc.poll() is None, f"master exited:\n{server.logs()}"
        kids = children(server.proc.pid)
        logs = server.logs()
        if len(kids) == count and all(serving(logs, pid) for pid in kids):
            return kids
        return None
    return wait_for(check, timeout, message=f"{count} serving workers")  # type: ignore[return-value]


def wait_log(server: Server, text: str, timeout: float = 20.0) -> None:
    def check() -> bool:
        assert server.proc.poll() is None or text in server.logs(), f"master exited:\n{server.logs()}"
        return text in server.logs()
    wait_for(check, timeout, message=repr(text))


def raw_request(host: str, port: int, path: str, timeout: float = TIMEOUT) -> tuple[int, bytes]:
    """One request on a new connection (`connection: close`): (status, body)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise ConnectionError(f"GET {path}: the server closed the connection without a response")
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


def get_pid(server: Server) -> int:
    status, body = raw_request(server.host, server.port, "/pid")
    assert status == 200, body
    return json.loads(body)["pid"]


class Clients:
    """`n` threads looping on requests until stopped; every outcome is recorded."""

    def __init__(self, server: Server, n: int, path: str = "/pid") -> None:
        self.server, self.path = server, path
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ok: list[tuple[float, int]] = []  # (time, pid)
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._loop, args=(i % 2 == 0,), daemon=True)
                        for i in range(n)]

    def _loop(self, keep_alive: bool) -> None:
        client = httpx.Client(timeout=TIMEOUT) if keep_alive else None
        try:
            while not self.stop_event.is_set():
                try:
                    if client is not None:
                        r = client.get(self.server.url + self.path)
                        status, body = r.status_code, r.content
                    else:
                        status, body = raw_request(self.server.host, self.server.port, self.path)
                    if status == 200:
                        with self.lock:
                            self.ok.append((time.monotonic(), json.loads(body)["pid"]))
                    else:
                        with self.lock:
                            self.failures.append(f"status {status}: {body[:200]!r}")
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    with self.lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.005)
        finally:
            if client is not None:
                client.close()

    def __enter__(self) -> "Clients":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(TIMEOUT + 5)

    def pids_since(self, since: float) -> set[int]:
        with self.lock:
            return {pid for t, pid in self.ok if t >= since}


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("CATZILLA_") or name in ("WEB_CONCURRENCY", "NOTIFY_SOCKET",
                                                    "WATCHDOG_USEC", "WATCHDOG_PID",
                                                    "LISTEN_FDS", "LISTEN_PID"):
            del env[name]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(APPS), str(EXAMPLES)])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def launch(cmd: list[str], env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A server started with an arbitrary command line (for --bind, socket activation)."""
    log = tempfile.NamedTemporaryFile(prefix="catzilla-master-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env or clean_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc, Path(log.name)
    finally:
        stop_process(proc)
        log.close()
        os.unlink(log.name)


# -- one shared two-worker server ------------------------------------------------------------


@pytest.fixture(scope="module")
def pidfile() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="catzilla-pid-") as tmp:
        yield Path(tmp) / "master.pid"


@pytest.fixture(scope="module")
def server(pidfile: Path) -> Iterator[Server]:
    with run_server(APP, "--workers", "2", "--pid", str(pidfile),
                    "--health-path", "/healthz", "--ready-path", "/readyz") as s:
        wait_log(s, "2 worker(s) ready")
        yield s


def test_two_workers_share_new_connections(server: Server) -> None:
    workers = wait_workers(server, 2)
    results: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for _ in range(n):
            try:
                pid = get_pid(server)
                with lock:
                    results.append(pid)
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(25,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 200
    counts = {pid: results.count(pid) for pid in set(results)}
    assert set(counts) == workers, counts
    # Both workers serve a real share (an even split would be 100 each).
    assert min(counts.values()) >= 20, counts


def test_health_and_ready_probes(server: Server) -> None:
    wait_workers(server, 2)
    r = httpx.get(server.url + "/healthz", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json() == {"status": "alive"}
    r = httpx.get(server.url + "/readyz", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


def test_pid_file_holds_the_master_pid(server: Server, pidfile: Path) -> None:
    assert pidfile.read_text().strip() == str(server.proc.pid)


def test_kill_9_worker_is_replaced_within_2s(server: Server) -> None:
    before = wait_workers(server, 2)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()

    def replaced() -> set[int] | None:
        kids = children(server.proc.pid)
        logs = server.logs()
        if len(kids) == 2 and victim not in kids and all(serving(logs, p) for p in kids):
            return kids
        return None

    after = wait_for(replaced, 10.0, message="a replacement worker")
    elapsed = time.monotonic() - killed_at
    assert elapsed < 2.0, f"replacement took {elapsed:.2f} s"
    (new,) = after - before  # type: ignore[operator]
    logs = server.logs()
    assert f"worker {victim} killed by SIGKILL unexpectedly; replacing it" in logs
    assert re.search(rf"started worker {new} \(slot \d+, generation \d+\)", logs)
    # No request fails afterwards, and the replacement takes its share.
    pids = [get_pid(server) for _ in range(60)]
    assert set(pids) <= after  # type: ignore[operator]
    assert victim not in pids


def test_kill_9_of_a_replacement_worker_is_replaced_too() -> None:
    """The replacement is a worker like the first: its death is not a failed boot."""
    with run_server(APP, "--workers", "1") as s:
        wait_log(s, "1 worker(s) ready")
        (worker,) = wait_workers(s, 1)
        for round_ in range(3):
            time.sleep(0.5)  # the worker has served a while: it booted
            assert get_pid(s) == worker
            os.kill(worker, signal.SIGKILL)
            killed_at = time.monotonic()

            def replaced() -> set[int] | None:
                assert s.proc.poll() is None, f"the master stopped:\n{s.logs()[-2000:]}"
                kids = children(s.proc.pid)
                if len(kids) == 1 and worker not in kids and all(serving(s.logs(), p) for p in kids):
                    return kids
                return None

            (new,) = wait_for(replaced, 10.0, message=f"replacement {round_ + 1}")
            elapsed = time.monotonic() - killed_at
            assert elapsed < 2.0, f"replacement {round_ + 1} took {elapsed:.2f} s"
            assert f"worker {worker} killed by SIGKILL unexpectedly; replacing it" in s.logs()
            worker = new
        assert get_pid(s) == worker


def test_ttin_ttou_change_the_worker_count(server: Server) -> None:
    before = wait_workers(server, 2)
    master = server.proc.pid
    os.kill(master, signal.SIGTTIN)
    three = wait_workers(server, 3)
    assert before < three
    wait_log(server, f"master {master}: SIGTTIN: 3 worker(s)")
    os.kill(master, signal.SIGTTOU)
    time.sleep(0.3)  # two separate signals, not one coalesced one
    os.kill(master, signal.SIGTTOU)
    one = wait_workers(server, 1)
    assert one <= three
    logs = server.logs()
    assert f"master {master}: SIGTTOU: 1 worker(s)" in logs
    for pid in three - one:
        assert f"stopping worker {pid} (fewer workers requested)" in logs
        assert f"worker {pid} exited with status 0" in logs
    (survivor,) = one
    assert {get_pid(server) for _ in range(10)} == {survivor}
    os.kill(master, signal.SIGTTIN)  # back to two for the tests after this one
    wait_workers(server, 2)


def test_hup_replaces_every_worker_without_a_failed_request(server: Server) -> None:
    old = wait_workers(server, 2)
    master = server.proc.pid
    with Clients(server, 4) as clients:
        wait_for(lambda: len(clients.ok) >= 40, 10.0, message="clients running")
        os.kill(master, signal.SIGHUP)
        hup_at = time.monotonic()
        new = wait_for(lambda: (k := children(master)) and len(k) == 2 and not (k & old)
                       and all(serving(server.logs(), p) for p in k) and k, 20.0,
                       message="a new generation")
        done = time.monotonic()
        time.sleep(0.5)  # keep looping on the new generation
    assert clients.failures == [], clients.failures[:5]
    assert len(clients.ok) > 100
    assert clients.pids_since(done + 0.2) <= new  # type: ignore[operator]
    assert clients.pids_since(done + 0.2)
    assert clients.pids_since(hup_at - 10) & old, "the clients never reached the old workers"
    logs = server.logs()
    assert re.search(rf"master {master}: SIGHUP: starting generation \d+", logs)
    assert re.search(rf"master {master}: reload complete: generation \d+ serving", logs)
    for pid in old:
        assert re.search(rf"stopping worker {pid} \(replaced by generation \d+\)", logs)
        assert f"worker {pid} exited with status 0" in logs


def test_access_log_lines_by_default(server: Server) -> None:
    pid = get_pid(server)
    wait_for(lambda: re.search(rf"\[{pid}\] \[INFO\] catzilla\.access: 127\.0\.0\.1:\d+ - "
                               r'"GET /pid HTTP/1\.1" 200 ', server.logs()), 5.0,
             message="an access log line")


# -- graceful stop ---------------------------------------------------------------------------


def test_term_with_four_requests_in_flight(tmp_path: Path) -> None:
    pidfile = tmp_path / "m.pid"
    with run_server(APP, "--workers", "2", "--pid", str(pidfile)) as s:
        wait_log(s, "2 worker(s) ready")
        assert pidfile.read_text().strip() == str(s.proc.pid)
        outcomes: list[tuple[int, dict]] = []
        errors: list[str] = []

        def slow(path: str) -> None:
            try:
                r = httpx.get(s.url + path, timeout=TIMEOUT)
                outcomes.append((r.status_code, r.json()))
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

        paths = ["/slow?seconds=1.5", "/slow?seconds=1.5", "/slow-sync?seconds=1.5",
                 "/slow-sync?seconds=1.5"]
        threads = [threading.Thread(target=slow, args=(p,)) for p in paths]
        for t in threads:
            t.start()
        wait_for(lambda: httpx.get(s.url + "/inflight", timeout=TIMEOUT).json()["slow"] == 4, 5.0,
                 message="four requests in flight")
        s.proc.send_signal(signal.SIGTERM)
        term_at = time.monotonic()
        for t in threads:
            t.join(TIMEOUT + 5)
        assert errors == []
        assert [code for code, _ in outcomes] == [200] * 4
        assert sorted(body["slept"] for _, body in outcomes) == [1.5] * 4
        assert s.proc.wait(15) == 0
        assert time.monotonic() - term_at < 10
        logs = s.logs()
        assert f"master {s.proc.pid}: SIGTERM received: stopping gracefully" in logs
        assert f"master {s.proc.pid}: stopped" in logs
        assert not pidfile.exists(), "the pid file outlived the master"


def test_ready_answers_503_while_draining() -> None:
    with run_server(APP, "--workers", "1", "--health-path", "/healthz",
                    "--ready-path", "/readyz") as s:
        wait_log(s, "1 worker(s) ready")
        result: list[object] = []
        slow = threading.Thread(target=lambda: result.append(
            httpx.get(s.url + "/slow?seconds=2.5", timeout=TIMEOUT)))
        slow.start()
        wait_for(lambda: httpx.get(s.url + "/inflight", timeout=TIMEOUT).json()["slow"] == 1, 5.0,
                 message="the slow request in flight")
        probe, live = s.connect(), s.connect()
        with probe, live:
            probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, body = read_response(probe)
            assert (status, json.loads(body)) == (200, {"status": "ready"})
            assert headers.get("connection") != "close"
            live.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(live)[0] == 200

            s.proc.send_signal(signal.SIGTERM)
            wait_log(s, "stopping gracefully (signal)", 5.0)
            probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, body = read_response(probe)
            assert status == 503
            assert json.loads(body) == {"status": "draining"}
            assert headers.get("connection") == "close"
            # Liveness still holds while draining: the loop runs.
            live.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            status, _, body = read_response(live)
            assert (status, json.loads(body)) == (200, {"status": "alive"})
        slow.join(TIMEOUT + 5)
        assert len(result) == 1 and result[0].status_code == 200  # type: ignore[union-attr]
        assert s.proc.wait(15) == 0


# -- recycling and the heartbeat ---------------------------------------------------------------


def test_max_requests_recycles_the_worker() -> None:
    n = 20
    with run_server(APP, "--workers", "1", "--max-requests", str(n),
                    "--max-requests-jitter", "0") as s:
        wait_log(s, "1 worker(s) ready")  # no request before the counted ones
        (first,) = wait_workers(s, 1)
        pids = [get_pid(s) for _ in range(n)]
        assert pids == [first] * n, "recycled before --max-requests"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                pid = get_pid(s)  # one request at a time
            except ConnectionError:
                continue  # failed requests are the next test's subject
            pids.append(pid)
            if pid != first:
                break
        assert pids[-1] != first, "the worker was never recycled"
        logs = s.logs()
        assert re.search(rf"worker {first} stopping gracefully \(recycling after \d+ requests "
                         r"\(--max-requests\)\)", logs)
        assert f"worker {first} exited with status 0" in logs
        # A client sending one request at a time: the worker should stop taking requests
        # about when it has answered N of them, not thousands later.
        served_by_first = pids.count(first)
        assert n <= served_by_first <= 2 * n, \
            f"--max-requests {n}: the first worker answered {served_by_first} requests"


def test_max_requests_recycling_fails_no_request() -> None:
    """A client looping as fast as it can through several recycles: every request answers."""
    with run_server(APP, "--workers", "1", "--max-requests", "20",
                    "--max-requests-jitter", "0") as s:
        wait_log(s, "1 worker(s) ready")
        pids: list[int] = []
        failures: list[str] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(set(pids)) < 3:
            try:
                pids.append(get_pid(s))
            except Exception as exc:  # noqa: BLE001 - every failure counts
                failures.append(f"after {len(pids)} answers: {exc!r}")
                if s.proc.poll() is not None:
                    break
        logs = "\n".join(line for line in s.logs().splitlines() if "catzilla.access" not in line)
        assert failures == [], f"{failures[:3]}\n{logs[-2500:]}"
        assert s.proc.poll() is None, f"the master stopped:\n{logs[-2500:]}"
        assert len(set(pids)) >= 3, "fewer than two recycles"


def test_blocked_worker_is_replaced_and_its_stack_dumped() -> None:
    with run_server(APP, "--workers", "1", "--timeout", "3") as s:
        (victim,) = wait_workers(s, 1)
        blocked: list[object] = []

        def block() -> None:
            try:
                blocked.append(httpx.get(s.url + "/block?seconds=60", timeout=30).status_code)
            except httpx.HTTPError as exc:
                blocked.append(exc)

        t = threading.Thread(target=block, daemon=True)
        t.start()
        started = time.monotonic()
        (new,) = wait_for(lambda: (k := children(s.proc.pid)) and victim not in k
                          and all(serving(s.logs(), p) for p in k) and k, 25.0,
                          message="the blocked worker's replacement")
        elapsed = time.monotonic() - started
        assert 2.5 < elapsed < 20, elapsed
        t.join(10)
        assert blocked and isinstance(blocked[0], httpx.HTTPError), blocked
        logs = s.logs()
        assert re.search(rf"worker {victim}'s event loop has not run for [\d.]+ s \(--timeout 3\); "
                         r"dumping its stack and replacing it", logs)
        assert "Fatal Python error: Aborted" in logs
        # faulthandler's dump names the function the loop was stuck in.
        assert re.search(r'File ".*master_app\.py", line \d+ in block', logs), logs[-3000:]
        assert f"worker {victim} killed by SIGABRT unexpectedly; replacing it" in logs
        assert get_pid(s) == new


# -- start-up failures -------------------------------------------------------------------------


@pytest.mark.parametrize("target, needle", [
    ("master_no_such_module_xyz:app", "master_no_such_module_xyz"),
    ("master_broken:app", "master_broken"),
    ("master_app:no_such_attribute", "no_such_attribute"),
])
def test_app_that_does_not_import_exits_non_zero(target: str, needle: str) -> None:
    cmd = [sys.executable, "-m", "catzilla", "run", target, "--host", "127.0.0.1",
           "--port", str(free_port()), "--workers", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=30)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 4, output  # gunicorn's "app load error" status
    assert needle in output
    assert re.search(rf"the application '{re.escape(target)}' could not be loaded", output), output
    if target == "master_broken:app":
        assert "catzilla_no_such_dependency_xyz" in output  # the real cause is shown


# -- systemd -------------------------------------------------------------------------------------


def catzilla_script() -> str:
    script = Path(sys.executable).parent / "catzilla"
    return str(script) if script.exists() else (shutil.which("catzilla") or "catzilla")


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate not installed (Debian's systemd package)")
def test_systemd_socket_activation() -> None:
    port = free_port()
    env = clean_env()
    cmd = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
           "-E", f"PYTHONPATH={env['PYTHONPATH']}", "-E", "PYTHONUNBUFFERED=1",
           catzilla_script(), "run", APP, "--workers", "2"]
    with launch(cmd, env) as (proc, log):
        wait_listening("127.0.0.1", port, proc, 10)
        # The first connection makes systemd-socket-activate exec catzilla on the socket.
        status, body = raw_request("127.0.0.1", port, "/pid", timeout=30)
        assert status == 200
        pid = json.loads(body)["pid"]
        assert pid in children(proc.pid)  # a worker of the exec'ed master
        text = log.read_text()
        assert f"master {proc.pid}: listening on http://127.0.0.1:{port}, 2 worker(s)" in text
        wait_for(lambda: f"master {proc.pid}: 2 worker(s) ready" in log.read_text(), 20)
        pids = {json.loads(raw_request("127.0.0.1", port, "/pid")[1])["pid"] for _ in range(20)}
        assert pids <= children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_sd_notify_messages(tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(0.2)
    messages: list[tuple[float, str]] = []

    def receive_until(predicate: Callable[[list[str]], bool], timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(socket.timeout):
                messages.append((time.monotonic(), listener.recv(4096).decode()))
            texts = [m for _, m in messages]
            if predicate(texts):
                return texts
        raise AssertionError(f"notifications so far: {[m for _, m in messages]}")

    def states() -> list[str]:
        return [m.split("\n")[0] for _, m in messages if m != "WATCHDOG=1"]

    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
    with listener, run_server(APP, "--workers", "2", env=env) as s:
        receive_until(lambda t: any(m.startswith("READY=1") for m in t), 20)
        # READY=1 comes once every worker serves.
        kids = children(s.proc.pid)
        assert len(kids) == 2 and all(serving(s.logs(), p) for p in kids), s.logs()
        ready = next(m for _, m in messages if m.startswith("READY=1"))
        assert f"MAINPID={s.proc.pid}" in ready.split("\n")
        # WATCHDOG=1 every WATCHDOG_USEC / 2 (0.2 s): several in a second.
        start = len(messages)
        receive_until(lambda t: t[start:].count("WATCHDOG=1") >= 3, 3)

        os.kill(s.proc.pid, signal.SIGHUP)
        receive_until(lambda t: sum(m.startswith("READY=1") for m in t) >= 2, 20)
        assert states() == ["READY=1", "RELOADING=1", "READY=1"]
        new = wait_workers(s, 2)
        assert not (new & kids)

        s.proc.send_signal(signal.SIGTERM)
        receive_until(lambda t: "STOPPING=1" in t, 10)
        assert s.proc.wait(15) == 0
        assert states() == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


# -- logs ------------------------------------------------------------------------------------------


def test_usr1_reopens_the_log_file(tmp_path: Path) -> None:
    path = tmp_path / "catzilla.log"
    with run_server(APP, "--workers", "1", "--log-file", str(path)) as s:
        wait_for(lambda: path.exists() and "1 worker(s) ready" in path.read_text(), 20,
                 message="the master's ready line in the log file")
        assert raw_request(s.host, s.port, "/before-rotate")[0] == 404
        wait_for(lambda: '"GET /before-rotate HTTP/1.1" 404' in path.read_text(), 5)
        rotated = tmp_path / "catzilla.log.1"
        path.rename(rotated)
        os.kill(s.proc.pid, signal.SIGUSR1)
        time.sleep(1.0)  # the master forwards USR1 to its workers
        assert raw_request(s.host, s.port, "/after-rotate")[0] == 404
        os.kill(s.proc.pid, signal.SIGTTIN)  # something the master itself logs
        wait_for(lambda: path.exists() and '"GET /after-rotate HTTP/1.1" 404' in path.read_text()
                 and "SIGTTIN: 2 worker(s)" in path.read_text(), 10,
                 message="new lines in a new file at the path")
        old = rotated.read_text()
        assert '"GET /before-rotate HTTP/1.1" 404' in old
        assert "/after-rotate" not in old
        assert "SIGTTIN" not in old
        assert s.logs() == ""  # nothing on stderr with --log-file


def test_json_log_format() -> None:
    with run_server(APP, "--workers", "1", "--log-format", "json") as s:
        wait_log(s, "1 worker(s) ready")
        pid = get_pid(s)
        wait_log(s, '"logger":"catzilla.access"', 5)
        assert s.stop() == 0
        master, text = s.proc.pid, s.logs()
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    for entry in entries:
        assert {"time", "level", "logger", "pid", "message"} <= set(entry), entry
    access = [e for e in entries if e["logger"] == "catzilla.access"]
    assert len(access) == 1
    assert access[0]["pid"] == pid
    assert (access[0]["method"], access[0]["path"], access[0]["status"]) == ("GET", "/pid", 200)
    assert access[0]["level"] == "info"
    started = [e for e in entries if e["message"].startswith(f"master {master}: started worker {pid} ")]
    assert len(started) == 1 and started[0]["pid"] == master
    assert any(e["message"] == f"master {master}: worker {pid} exited with status 0" for e in entries)
    assert any(e["message"] == f"worker {pid} stopped" and e["pid"] == pid for e in entries)


def test_no_access_log() -> None:
    with run_server(APP, "--workers", "1", "--no-access-log") as s:
        wait_log(s, "1 worker(s) ready")
        for _ in range(5):
            get_pid(s)
        assert raw_request(s.host, s.port, "/missing")[0] == 404
        time.sleep(0.3)
        logs = s.logs()
    assert "catzilla.access" not in logs
    assert "serving on" in logs  # the other logs still flow


# -- worker count and listeners ----------------------------------------------------------------


def test_workers_auto_is_one_per_cpu() -> None:
    cpus = len(os.sched_getaffinity(0))
    with run_server(APP, "--workers", "auto") as s:
        wait_log(s, f"{cpus} worker(s) ready")
        assert len(wait_workers(s, cpus)) == cpus
        assert f"master {s.proc.pid}: listening on {s.url}, {cpus} worker(s)" in s.logs()


def test_web_concurrency_sets_the_default_worker_count() -> None:
    with run_server(APP, env={"WEB_CONCURRENCY": "3"}) as s:
        wait_log(s, "3 worker(s) ready")
        assert len(wait_workers(s, 3)) == 3


def test_uds(tmp_path: Path) -> None:
    path = tmp_path / "catzilla.sock"
    with run_server(APP, "--workers", "1", "--uds", str(path)) as s:
        wait_log(s, "1 worker(s) ready")
        (worker,) = children(s.proc.pid)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=TIMEOUT) as client:
            r = client.get("http://catzilla/pid")
        assert r.status_code == 200
        assert r.json() == {"pid": worker}
        assert get_pid(s) == worker  # TCP too: --host/--port were given as well
        assert f"unix:{path}" in s.logs()
    assert not path.exists(), "the socket file outlived the server"


def test_repeatable_bind() -> None:
    ports = [free_port(), free_port()]
    cmd = [sys.executable, "-m", "catzilla", "run", APP, "--workers", "1",
           "--bind", f"127.0.0.1:{ports[0]}", "--bind", f"127.0.0.1:{ports[1]}"]
    with launch(cmd) as (proc, log):
        wait_for(lambda: "1 worker(s) ready" in log.read_text() or proc.poll() is not None, 20)
        assert proc.poll() is None, log.read_text()
        (worker,) = children(proc.pid)
        for port in ports:
            status, body = raw_request("127.0.0.1", port, "/pid")
            assert (status, json.loads(body)) == (200, {"pid": worker})
        assert (f"listening on http://127.0.0.1:{ports[0]}, http://127.0.0.1:{ports[1]}, "
                "1 worker(s)") in log.read_text()


def test_uds_alone_listens_only_there(tmp_path: Path) -> None:
    path = tmp_path / "only.sock"
    cmd = [sys.executable, "-m", "catzilla", "run", APP, "--workers", "1", "--uds", str(path)]
    with launch(cmd) as (proc, log):
        wait_for(lambda: "1 worker(s) ready" in log.read_text() or proc.poll() is not None, 20)
        assert proc.poll() is None, log.read_text()
        assert f"listening on unix:{path}, 1 worker(s)" in log.read_text()
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=TIMEOUT) as client:
            assert client.get("http://catzilla/pid").status_code == 200


def test_a_port_in_use_is_an_error_without_reuse_port() -> None:
    with run_server(APP, "--workers", "1") as first:
        cmd = [sys.executable, "-m", "catzilla", "run", APP, "--port", str(first.port)]
        done = subprocess.run(cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=30)
        assert done.returncode != 0
        assert "cannot listen" in done.stderr and "in use" in done.stderr, done.stderr


@pytest.mark.parametrize("flags, needle", [
    (["--port", "70000"], "0..65535"),
    (["--threads", "0"], "threads must be above 0"),
    (["--max-header-size", "-1"], "max-header-size must be above 0"),
    (["--port", "abc"], "invalid literal"),
])
def test_bad_settings_are_refused_with_their_name(flags: list[str], needle: str) -> None:
    cmd = [sys.executable, "-m", "catzilla", "run", APP, *flags]
    done = subprocess.run(cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert needle in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_timeout_zero_disables_the_heartbeat_timeout() -> None:
    with run_server(APP, "--workers", "1", "--timeout", "0") as s:
        wait_log(s, "1 worker(s) ready")
        worker = get_pid(s)
        time.sleep(1.5)
        assert get_pid(s) == worker
        assert "has not run for" not in s.logs()


def test_workers_ignore_the_masters_signals() -> None:
    with run_server(APP, "--workers", "1") as s:
        wait_log(s, "1 worker(s) ready")
        worker = get_pid(s)
        for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            os.kill(worker, signum)  # as `systemctl kill -s HUP` does to every process
        time.sleep(0.3)
        assert get_pid(s) == worker


def test_second_stop_signal_stops_at_once() -> None:
    with run_server(APP, "--workers", "1", "--graceful-timeout", "30") as s:
        wait_log(s, "1 worker(s) ready")
        def in_flight() -> None:
            with contextlib.suppress(OSError):  # cut short by the second signal, as it should be
                raw_request(s.host, s.port, "/slow?seconds=20", timeout=25)

        slow = threading.Thread(target=in_flight, daemon=True)
        slow.start()
        time.sleep(0.5)
        started = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # Draining: the listening socket is closed, new connections are refused at once.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((s.host, s.port), timeout=2).close()
        s.proc.send_signal(signal.SIGINT)
        s.proc.wait(10)
        assert time.monotonic() - started < 5
        assert "again: stopping now" in s.logs()


def test_app_listen_with_workers_forks_them(tmp_path: Path) -> None:
    script = tmp_path / "listen_two.py"
    port = free_port()
    script.write_text(
        "import os\nfrom catzilla import Catzilla\napp = Catzilla()\n\n"
        "@app.get('/pid')\nasync def pid(request):\n    return {'pid': os.getpid()}\n\n"
        f"app.listen(port={port}, workers=2)\n")
    with launch([sys.executable, str(script)]) as (proc, log):
        wait_for(lambda: "2 worker(s) ready" in log.read_text() or proc.poll() is not None, 20)
        assert proc.poll() is None, log.read_text()
        workers = children(proc.pid)
        assert len(workers) == 2
        seen = {json.loads(raw_request("127.0.0.1", port, "/pid")[1])["pid"] for _ in range(40)}
        assert seen <= workers and seen


def test_refused_requests_get_an_access_log_line() -> None:
    with run_server(APP, "--workers", "1") as s:
        wait_log(s, "1 worker(s) ready")
        with s.connect() as sock:
            sock.sendall(b"GARBAGE\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 400")
        wait_for(lambda: re.search(r'catzilla\.access: 127\.0\.0\.1:\d+ - "-" 400 \d+ -', s.logs()), 5)
