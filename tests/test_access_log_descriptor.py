"""The access log written straight to a descriptor (AccessLog.way "descriptor"): the same
bytes the logging handler would write, to a pipe whose reader is slow without a line lost
and without the loop waiting for it, lines beyond --access-log-backlog dropped and counted;
and the ways back to the logging handler where its stream or set-up is someone else's."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Iterator

from catzilla.logs import configure_logging
from catzilla.worker.access_log import AccessLog
from conftest import APPS, ROOT, free_port, read_responses, stop_process, wait_for, wait_listening


@contextlib.contextmanager
def logging_to(log_format: str, path: str) -> Iterator[logging.Handler]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", log_format, path)
        yield root.handlers[0]
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved


def read_all(fd: int) -> bytes:
    """What the pipe holds now."""
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            data += chunk
    return data


def test_lines_written_to_a_pipe_are_the_references_bytes(monkeypatch):
    """Through a pipe (the Kubernetes and Docker way): byte for byte the lines the Python
    reference makes, for ordinary and odd fields, text and JSON."""
    rnd = random.Random(3)
    for log_format in ("text", "json"):
        r, w = os.pipe()
        try:
            # A FileHandler on the pipe: its stream is a FIFO's, as stderr is under a container runtime.
            with logging_to(log_format, f"/proc/self/fd/{w}"):
                loop = asyncio.new_event_loop()
                native, reference = AccessLog(loop), AccessLog(loop, native=False)
                assert native.way == "descriptor" and reference.way == "stream"
                expected, data = "", b""
                for i in range(300):
                    now = 1.7e9 + i * 0.37
                    monkeypatch.setattr(time, "time", lambda: now)
                    args = (rnd.choice(["127.0.0.1:4000", "::1:80"]), "GET",
                            rnd.choice(["/json", "/a b", '/q"x', "/nl\nx", "/é"]), "1.1", rnd.choice([200, 404]),
                            rnd.choice([None, 27]), rnd.random() * 100, rnd.choice([None, "5f0c2a"]))
                    native.log(*args)
                    reference.log(*args)
                    if i % 50 == 49:  # a burst's end (the pipe may hold less: read as it fills)
                        while native._native.write():
                            data += read_all(r)
                        expected += reference._take()
                monkeypatch.undo()
                loop.close()
                assert data + read_all(r) == expected.encode("utf-8"), log_format
        finally:
            os.close(r)
            os.close(w)


def test_a_users_set_up_or_stream_takes_the_logging_way(tmp_path):
    with logging_to("text", str(tmp_path / "a.log")) as handler:
        loop = asyncio.new_event_loop()
        assert AccessLog(loop).way == "descriptor"
        handler.stream.write = handler.stream.write  # a write of someone's own: it is called
        assert AccessLog(loop).way == "stream"
        del handler.stream.write
        mine = logging.NullHandler()
        logging.getLogger("catzilla.access").addHandler(mine)
        try:
            assert AccessLog(loop).way == "records"
        finally:
            logging.getLogger("catzilla.access").removeHandler(mine)
        loop.close()


class SlowReader:
    """The read end of a server's stderr: nothing read until start(), then small reads
    with pauses (a journal or a container runtime that falls behind)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = bytearray()
        self.go = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.go.wait()
        while chunk := os.read(self.fd, 4096):
            self.data += chunk
            time.sleep(0.002)

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@contextlib.contextmanager
def server_on_a_pipe(*args: str) -> Iterator[tuple[subprocess.Popen, int, SlowReader]]:
    """A real server (one worker) whose stdout and stderr are one pipe, read by a SlowReader."""
    port = free_port()
    r, w = os.pipe()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(APPS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "catzilla", "run", "hardening_app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", *args], cwd=ROOT, env=env, stdout=w, stderr=w)
    os.close(w)
    reader = SlowReader(r)
    try:
        assert wait_listening("127.0.0.1", port, proc, 20), "the server did not start"
        yield proc, port, reader
    finally:
        reader.go.set()
        stop_process(proc)
        reader.thread.join(10)
        os.close(r)


def pipelined(port: int, count: int, path: str) -> None:
    """`count` requests on one connection, a hundred at a time, every response read."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for _ in range(count // 100):
            sock.sendall(request * 100)
            assert len(read_responses(sock, 100, timeout=30)) == 100


def test_a_reader_that_falls_behind_neither_stops_the_server_nor_loses_lines():
    # 3000 lines of ~330 bytes: about 1 MB, fifteen times what a pipe holds. The reader reads
    # nothing until every response has come: a write that waited for it would hang the loop.
    path = "/" + "p" * 240
    with server_on_a_pipe() as (proc, port, reader):
        pipelined(port, 3000, path)
        reader.go.set()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
        reader.thread.join(30)
    text = reader.text()
    assert text.count(f'"GET {path} HTTP/1.1" 404') == 3000
    assert "dropped" not in text
    lines = [line for line in text.splitlines() if "catzilla.access" in line]
    assert len(lines) == 3000 and all(line.endswith("ms") for line in lines)  # none torn
    stopped = text.index(" stopped")
    assert text.rindex(path) < stopped  # the last lines before the worker's last word


def test_lines_beyond_the_backlog_are_dropped_and_counted():
    path = "/" + "p" * 240
    with server_on_a_pipe("--access-log-backlog", "100000") as (proc, port, reader):
        pipelined(port, 3000, path)
        reader.go.set()
        wait_for(lambda: "lines dropped" in reader.text(), 20, message="the count, once the reader caught up")
        pipelined(port, 100, "/after")  # kept again
        wait_for(lambda: reader.text().count('"GET /after HTTP/1.1" 404') == 100, 20, message="the lines after")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
        reader.thread.join(30)
    text = reader.text()
    written = text.count(f'"GET {path} HTTP/1.1" 404')
    notice = next(line for line in text.splitlines() if "lines dropped" in line)
    dropped = int(notice.split("access log: ")[1].split()[0])
    assert dropped > 0 and written + dropped == 3000, (written, dropped)
    assert text.count('"GET /after HTTP/1.1" 404') == 100


def test_lines_on_the_real_clocks_say_the_time_and_duration_python_would(tmp_path):
    """With time.time and time.perf_counter not replaced, the C side reads the clocks itself:
    the line's second and milliseconds lie between time.time() before and after, and the
    duration is the perf_counter() span."""
    import datetime

    from catzilla._native import Exchange
    from catzilla.datastructures import Address
    from catzilla.request import Request

    with logging_to("json", str(tmp_path / "a.log")):
        loop = asyncio.new_event_loop()
        access = AccessLog(loop)

        class Connection:
            __slots__ = ("client", "client_text")

        connection = Connection()
        connection.client, connection.client_text = Address("127.0.0.1", 1), "127.0.0.1:1"
        for _ in range(20):
            before = time.time()
            exchange = Exchange(connection, Request("GET", "/x", client=connection.client), None, b"", False, True, 0,
                                time.perf_counter() - 0.25)
            access.exchange(exchange, 200, 2)
            span = (time.perf_counter() - exchange.started) * 1000.0
            after = time.time()
            entry = json.loads(access._take())
            stamp = datetime.datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
            stamp = stamp.replace(tzinfo=datetime.timezone.utc).timestamp()
            assert int(before * 1000) / 1000 <= stamp <= after, (before, entry["time"], after)
            assert 250.0 <= entry["duration_ms"] <= span + 0.001
        loop.close()


def test_the_descriptor_is_given_back(tmp_path):
    """decide() again closes the previous descriptor; an AccessLog collected closes its own
    (a TestClient per test makes a worker, and an AccessLog, each time)."""
    import gc

    with logging_to("text", str(tmp_path / "a.log")):
        loop = asyncio.new_event_loop()
        gc.collect()  # earlier tests' AccessLogs
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(20):
            access = AccessLog(loop)
            access.decide()
            assert access.way == "descriptor"
            del access
        gc.collect()
        assert len(os.listdir("/proc/self/fd")) == before
        loop.close()
