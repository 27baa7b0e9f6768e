"""Hardening of the master and the shared stats block against an outside attack run.

- a live `--uds` socket is not taken over by a second server (only a stale one is replaced);
- the stats file in /dev/shm cannot be planted, swapped or redirected, readers refuse files
  that are not ours, and a master killed with -9 does not leave its file behind for good;
- a stats block stuck "mid-fold" (an odd sequence word) never stalls a worker's event loop;
- a worker killed from outside before it is ready is replaced, at start and during a reload;
  only the app's own failure stops the master.

Every server is a real `catzilla run` master with real workers on real sockets.
"""
from __future__ import annotations

import contextlib
import json
import mmap
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, free_port, run_server, stop_process
from test_master import children, clean_env, launch, raw_request, serving, wait_for, wait_log, wait_workers

APP = "hm_app:app"
TIMEOUT = 10.0
# ext/stats.c BlockHeader: magic, nslots, nroutes, nretired, then the sequence word.
SEQUENCE_OFFSET = 32
# A request to a worker whose loop is never stalled answers in a few ms on this machine.
FAST = 0.1


def uds_cmd(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "catzilla", "run", APP, "--workers", "1", "--uds", str(path), *args]


def wait_ready_line(proc: subprocess.Popen, log: Path, count: int = 1) -> None:
    wait_for(lambda: f"{count} worker(s) ready" in log.read_text() or proc.poll() is not None, 20,
             message="the master's ready line")
    assert proc.poll() is None, log.read_text()


def uds_get(path: Path, url: str = "http://catzilla/pid") -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=TIMEOUT) as client:
        return client.get(url)


def run_to_exit(cmd: list[str], timeout: float = 20.0) -> tuple[int | None, str]:
    """Run a server that is expected to refuse to start: (exit status or None if it kept
    running, its output)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        return proc.returncode, output
    except subprocess.TimeoutExpired:
        stop_process(proc)
        output, _ = proc.communicate()
        return None, output


# -- 6: --uds on a path in use -------------------------------------------------------------------


def test_second_server_on_a_live_uds_path_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "live.sock"
    with launch(uds_cmd(path)) as (proc, log):
        wait_ready_line(proc, log)
        inode = path.stat().st_ino
        status, output = run_to_exit(uds_cmd(path))
        assert status is not None, f"the second server took over the socket:\n{output}"
        assert status != 0, output
        assert "in use" in output and str(path) in output, output
        # the first server still owns and serves the socket
        assert path.stat().st_ino == inode
        assert uds_get(path).json()["pid"] in children(proc.pid)


def test_stale_uds_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))  # bound, never listening, closed: connect() is refused
    leftover.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    with launch(uds_cmd(path)) as (proc, log):
        wait_ready_line(proc, log)
        assert uds_get(path).status_code == 200


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_uds_path_that_is_not_a_socket_is_an_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "not-a.sock"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    if kind == "file":
        path.write_text("precious")
    else:
        path.symlink_to(victim)
    status, output = run_to_exit(uds_cmd(path))
    assert status is not None and status != 0, output
    assert "not a socket" in output and str(path) in output, output
    assert os.path.lexists(path) and path.read_text() == "precious"
    assert victim.read_text() == "precious"


# -- 11: the stats file in /dev/shm --------------------------------------------------------------


def test_stats_create_refuses_a_symlink_at_its_path(tmp_path: Path) -> None:
    from catzilla.stats import StatsBoard

    victim = tmp_path / "victim"
    victim.write_bytes(b"precious data\n")
    path = tmp_path / "catzilla-1.stats"
    path.symlink_to(victim)
    with pytest.raises(OSError):
        StatsBoard.create(4, 3, str(path))
    assert victim.read_bytes() == b"precious data\n"
    assert path.is_symlink() and os.readlink(path) == str(victim)


def test_stats_create_replaces_a_preplanted_file_with_a_private_one(tmp_path: Path) -> None:
    """A world-writable file left at the name (a planted one, or a dead master's) is not adopted:
    it is unlinked and a new private file made, so whoever holds the old one open writes into a
    file the server no longer uses."""
    from catzilla.stats import StatsBoard

    path = tmp_path / "catzilla-1.stats"
    planted = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    os.fchmod(planted, 0o666)
    os.write(planted, b"planted")
    old_inode = os.fstat(planted).st_ino
    try:
        board = StatsBoard.create(4, 3, str(path))
        slot = board.attach(0, 1, [("GET /a", False)])
        slot.end(0, slot.begin(0), 200, 0, 0)
        info = os.lstat(path)
        assert stat.S_ISREG(info.st_mode) and info.st_ino != old_inode
        assert stat.S_IMODE(info.st_mode) == 0o600
        os.pwrite(planted, b"\xff" * 4096, 0)  # the planter scribbles on its file
        assert board.totals()[0] == 1
        board.unlink()
    finally:
        os.close(planted)


def test_stats_create_does_not_take_a_live_masters_file(tmp_path: Path) -> None:
    from catzilla.stats import StatsBoard

    path = str(tmp_path / "catzilla-1.stats")
    live = StatsBoard.create(4, 3, path)  # holds its file, as a running master does
    inode = os.lstat(path).st_ino
    with pytest.raises(OSError):
        StatsBoard.create(4, 3, path)
    assert os.lstat(path).st_ino == inode
    slot = live.attach(0, 1, [("GET /a", False)])
    slot.end(0, slot.begin(0), 200, 0, 0)
    assert StatsBoard.open(path).totals()[0] == 1
    live.unlink()


def test_stats_readers_refuse_files_that_are_not_safely_ours(tmp_path: Path, monkeypatch) -> None:
    import catzilla.stats as stats
    from catzilla.stats import StatsBoard

    good = str(tmp_path / f"catzilla-{os.getppid()}.stats")  # a live pid: find_boards lists it
    board = StatsBoard.create(2, 2, good)

    link = tmp_path / f"catzilla-{os.getpid()}.stats"
    link.symlink_to(good)
    with pytest.raises((OSError, ValueError)):
        StatsBoard.open(str(link))

    loose = tmp_path / "loose.stats"
    loose.write_bytes(Path(good).read_bytes())
    os.chmod(loose, 0o666)
    with pytest.raises((OSError, ValueError), match="writable"):
        StatsBoard.open(str(loose))

    short = tmp_path / "short.stats"
    short.write_bytes(b"\0" * 8)
    os.chmod(short, 0o600)
    with pytest.raises((OSError, ValueError)):
        StatsBoard.open(str(short))

    fifo = tmp_path / "fifo.stats"
    os.mkfifo(fifo, 0o600)
    with pytest.raises((OSError, ValueError)):
        StatsBoard.open(str(fifo))  # refused, not a reader blocked on a FIFO

    monkeypatch.setattr(stats, "_directory", lambda: str(tmp_path))
    assert stats.find_boards() == [good]  # the symlink is not offered
    board.unlink()


def test_master_stats_file_is_a_private_regular_file() -> None:
    from catzilla.stats import board_path

    with run_server(APP, "--workers", "1") as s:
        wait_log(s, "1 worker(s) ready")
        info = os.lstat(board_path(s.proc.pid))
        assert stat.S_ISREG(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert info.st_uid == os.geteuid()


def test_stats_file_of_a_master_killed_with_9_is_removed_by_the_next_master() -> None:
    from catzilla.stats import board_path

    with run_server(APP, "--workers", "1") as first:
        wait_log(first, "1 worker(s) ready")
        left = board_path(first.proc.pid)
        workers = children(first.proc.pid)
        assert os.path.exists(left)
        os.kill(first.proc.pid, signal.SIGKILL)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        first.proc.wait(TIMEOUT)
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), TIMEOUT,
                 message="the killed workers to be gone")
    assert os.path.exists(left), "nothing left to clean up: the test proves nothing"
    with run_server(APP, "--workers", "1") as second:
        wait_log(second, "1 worker(s) ready")
        assert not os.path.exists(left), f"{left} of the killed master is still there"
        assert os.path.exists(board_path(second.proc.pid))


# -- 12: a stats block stuck mid-fold --------------------------------------------------------------


def timed_get(host: str, port: int, path: str) -> float:
    start = time.monotonic()
    status, _ = raw_request(host, port, path)
    assert status == 200, path
    return time.monotonic() - start


def test_a_stuck_stats_sequence_never_stalls_the_event_loop() -> None:
    from catzilla.stats import board_path

    with run_server(APP, "--workers", "1", "--metrics-path", "/metrics", "--no-access-log") as s:
        wait_log(s, "1 worker(s) ready")
        for _ in range(3):
            raw_request(s.host, s.port, "/stats")  # the worker has good values to serve
        with open(board_path(s.proc.pid), "r+b") as f, mmap.mmap(f.fileno(), 0) as block:
            (sequence,) = struct.unpack_from("<Q", block, SEQUENCE_OFFSET)
            assert sequence % 2 == 0
            struct.pack_into("<Q", block, SEQUENCE_OFFSET, sequence + 1)  # "mid-fold", for good
            try:
                time.sleep(2.5)  # a few once-a-second ticks meet the stuck block
                slow = []
                for path in ("/pid", "/metrics", "/stats"):
                    for _ in range(20):
                        took = timed_get(s.host, s.port, path)
                        if took >= FAST:
                            slow.append((path, round(took, 3)))
                assert not slow, f"requests stalled by the stuck stats block: {slow}"
                requests = json.loads(raw_request(s.host, s.port, "/stats")[1])["requests"]
                assert requests >= 2  # the last good values (the 3rd read saw 2 done), not zeros
            finally:
                struct.pack_into("<Q", block, SEQUENCE_OFFSET, sequence)
        # readable again: new counts show up
        wait_for(lambda: json.loads(raw_request(s.host, s.port, "/stats")[1])["requests"] > requests,
                 TIMEOUT, message="fresh stats after the block recovered")
        logs = s.logs()
    warnings = [line for line in logs.splitlines() if "WARNING" in line and "stats block" in line]
    # said once by the sampler and once by the snapshot reader, not every second
    assert 1 <= len(warnings) <= 2, "\n".join(warnings)
    assert "readable again" in logs


def test_loop_reads_of_a_stuck_block_are_bounded_and_the_next_fold_repairs_it() -> None:
    from catzilla.stats import LOOP_READ_PATIENCE, StatsBoard

    board = StatsBoard.create(2, 2)
    loop_view = board.on_event_loop()
    slot = board.attach(0, 1, [("GET /a", False)])
    slot.end(0, slot.begin(0), 200, 0, 0)
    assert loop_view.snapshot()["slots"][0]["requests"] == 1
    (sequence,) = struct.unpack_from("<Q", board._mapping, SEQUENCE_OFFSET)
    struct.pack_into("<Q", board._mapping, SEQUENCE_OFFSET, sequence | 1)
    start = time.monotonic()
    with pytest.raises(RuntimeError):
        loop_view.totals()
    slot.end(0, slot.begin(0), 200, 0, 0)
    stale = loop_view.snapshot()  # the last good values, at once
    assert time.monotonic() - start < 50 * LOOP_READ_PATIENCE
    assert stale["slots"][0]["requests"] == 1
    board.attach(1, 1, [("GET /a", False)])
    board.retire(1)  # the master's next fold leaves the sequence even again
    assert loop_view.totals()[0] == 2
    assert loop_view.snapshot()["slots"][0]["requests"] == 2


def test_corrupt_dimensions_and_keys_in_the_block_are_contained(tmp_path: Path) -> None:
    """The file's writer may scribble anything: the reader keeps the dimensions it checked
    when it opened the block and bounds every index by them."""
    from catzilla.stats import StatsBoard

    path = str(tmp_path / "block.stats")
    board = StatsBoard.create(2, 2, path)
    slot = board.attach(0, 1, [("GET /a", False), ("GET /b", True)])
    slot.end(0, slot.begin(0), 200, 0, 0)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as block:
        struct.pack_into("<QQQ", block, 8, 2**40, 2**40, 2**40)  # nslots, nroutes, nretired
        struct.pack_into("<Q", block, 128 + 24, 2**60)  # slot 0's route count (SlotHeader)
        block[256:256 + 96] = b"\xff" * 96  # route 0's key: unterminated, not UTF-8
    snap = board.snapshot()
    assert [len(s["routes"]) for s in snap["slots"]] == [2]
    assert board.totals()[0] == 1
    board.retire(0)
    assert board.totals()[0] == 1
    with pytest.raises(ValueError):
        StatsBoard.open(path)  # a new reader refuses impossible dimensions
    board.unlink()


# -- 13: workers killed before they are ready ------------------------------------------------------


def booting_worker(server, known: set[int]) -> int:
    """A worker of the master not in `known` that does not serve yet (the master has logged
    it as a worker: the one-shot on_server_start child is a child of the master too)."""
    def find() -> int | None:
        assert server.proc.poll() is None, server.logs()
        logs = server.logs()
        fresh = [pid for pid in children(server.proc.pid) - known
                 if f"started worker {pid} " in logs and not serving(logs, pid)]
        return fresh[0] if fresh else None
    return wait_for(find, 20, interval=0.02, message="a booting worker")  # type: ignore[return-value]


def test_worker_killed_before_it_is_ready_is_replaced() -> None:
    with run_server(APP, "--workers", "2", env={"HM_STARTUP_DELAY": "1.5"}) as s:
        victim = booting_worker(s, set())
        os.kill(victim, signal.SIGKILL)
        wait_log(s, "2 worker(s) ready", timeout=30)
        workers = wait_workers(s, 2, timeout=30)
        assert victim not in workers
        logs = s.logs()
        assert f"worker {victim} killed by SIGKILL" in logs
        assert "stopping" not in logs, logs
        assert s.proc.poll() is None


def test_worker_killed_before_it_is_ready_during_a_reload_does_not_abort_it() -> None:
    with run_server(APP, "--workers", "2", env={"HM_STARTUP_DELAY": "1.0"}) as s:
        wait_log(s, "2 worker(s) ready", timeout=30)
        old = wait_workers(s, 2)
        os.kill(s.proc.pid, signal.SIGHUP)
        victim = booting_worker(s, old)
        os.kill(victim, signal.SIGKILL)
        wait_log(s, "reload complete: generation 2 serving", timeout=30)
        new = wait_workers(s, 2, timeout=30)
        assert not (new & old) and victim not in new
        logs = s.logs()
        assert "reload failed" not in logs, logs
        assert f"worker {victim} killed by SIGKILL" in logs


def test_a_failing_startup_hook_still_stops_the_master() -> None:
    cmd = [sys.executable, "-m", "catzilla", "run", APP, "--host", "127.0.0.1",
           "--port", str(free_port()), "--workers", "2"]
    env = {**clean_env(), "HM_STARTUP_FAIL": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output  # gunicorn's "worker boot error"
    assert "startup hook failed on purpose" in output
    assert re.search(r"the application 'hm_app:app' did not boot", output), output
