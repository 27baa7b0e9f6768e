"""The access log: written directly where configure_logging sends lines, as records where a
user's own logging set-up is attached (over a real server), byte for byte what the logging
set-up's formatter would write, and never a line lost when a worker stops."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import signal
import time

import httpx

from catzilla.logs import configure_logging
from catzilla.worker import access_log
from catzilla.worker.access_log import AccessLog
from conftest import run_server, wait_for


def test_lines_of_a_burst_are_all_written_in_order():
    with run_server("hardening_app:app") as s:
        with httpx.Client(base_url=s.url) as client:
            for i in range(20):
                client.get(f"/host?n={i}")
        wait_for(lambda: s.logs().count('"GET /host HTTP/1.1" 200') == 20, 5, message="20 access lines")
        lines = [line for line in s.logs().splitlines() if "catzilla.access" in line]
        assert all(line.startswith("[") and "[INFO] catzilla.access: 127.0.0.1:" in line for line in lines)


def test_a_handler_of_the_users_own_gets_records(tmp_path):
    target = tmp_path / "access.log"
    with run_server("access_app:app", env={"ACCESS_FILE": str(target)}) as s:
        assert httpx.get(s.url + "/x").text == "x"
        wait_for(lambda: target.exists() and "GET /x 200" in target.read_text(), 5, message="the user's line")
        time.sleep(0.2)
        assert '"GET /x HTTP/1.1" 200' in s.logs()  # and the root handler still has it


def test_a_formatter_of_the_users_own_on_the_servers_handler_is_used():
    with run_server("access_app:app", env={"ACCESS_FORMATTER": "MINE %(name)s %(message)s"}) as s:
        assert httpx.get(s.url + "/x").text == "x"
        wait_for(lambda: 'MINE catzilla.access 127.0.0.1:' in s.logs(), 5, message="the user's format")
        assert '"GET /x HTTP/1.1" 200 ' in s.logs()


def pipelined(server, path: str, count: int) -> None:
    """`count` requests sent in one write on one connection, every response read."""
    with server.connect() as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * count)
        data = b""
        while data.count(b"HTTP/1.1 200 OK") < count or not data.endswith(b"}"):  # JSON bodies
            chunk = sock.recv(65536)
            assert chunk, f"closed after {data.count(b'HTTP/1.1 200 OK')} responses"
            data += chunk


def test_the_last_lines_before_sigterm_are_in_the_file(tmp_path):
    path = tmp_path / "catzilla.log"
    with run_server("hardening_app:app", "--workers", "1", "--log-file", str(path)) as s:
        pid = httpx.get(s.url + "/pid").json()["pid"]
        pipelined(s, "/host?last", 50)
        s.proc.send_signal(signal.SIGTERM)  # at once: the lines may still be gathered
        assert s.proc.wait(15) == 0
    text = path.read_text()
    assert text.count('"GET /host HTTP/1.1" 200') == 50
    assert text.rindex('"GET /host HTTP/1.1" 200') < text.index(f"worker {pid} stopped")


def test_the_last_lines_before_a_hup_reload_are_in_the_file(tmp_path):
    path = tmp_path / "catzilla.log"
    with run_server("hardening_app:app", "--workers", "1", "--log-file", str(path)) as s:
        old = httpx.get(s.url + "/pid").json()["pid"]
        pipelined(s, "/host?before-reload", 50)
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: f"worker {old} stopped" in path.read_text(), 20, message="the old worker's exit")
        text = path.read_text()
        assert text.count('"GET /host HTTP/1.1" 200') == 50
        assert text.rindex('"GET /host HTTP/1.1" 200') < text.index(f"worker {old} stopped")
        pipelined(s, "/host?after-reload", 3)
        wait_for(lambda: path.read_text().count('"GET /host HTTP/1.1" 200') == 53, 5, message="the new worker's lines")


def test_json_lines_escape_what_json_must(tmp_path):
    path = tmp_path / "catzilla.log"
    with run_server("hardening_app:app", "--log-format", "json", "--log-file", str(path)) as s:
        for target in ("/host", "/host%22q", "/host%5Cb", "/host%0Ax", "/h%C3%A9"):
            httpx.get(s.url + target)
        wait_for(lambda: path.read_text().count('"logger":"catzilla.access"') == 5, 5, message="5 lines")
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    access = [e for e in entries if e["logger"] == "catzilla.access"]
    assert [e["path"] for e in access] == ["/host", '/host"q', "/host\\b", "/host\nx", "/hé"]
    for entry in access:
        assert list(entry) == ["time", "level", "logger", "pid", "message", "client", "method", "path",
                               "status", "duration_ms"]
        assert entry["message"].startswith(f'{entry["client"]} - "GET {entry["path"]} HTTP/1.1" {entry["status"]} ')
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])


def test_direct_lines_are_what_the_handlers_formatter_writes(tmp_path, monkeypatch):
    """Byte for byte, over many values: the line the access log writes itself and the one
    the logging set-up's formatter makes of the same record (same time) are the same."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        for log_format in ("text", "json"):
            path = tmp_path / f"{log_format}.log"
            configure_logging("info", log_format, str(path))
            handler = root.handlers[0]
            loop = asyncio.new_event_loop()
            access = AccessLog(loop)
            assert access.handler is handler  # the direct way
            rnd = random.Random(1)
            expected = []
            for i in range(2000):
                now = 1.7e9 + rnd.random() * 100000 + (0.9999999 if i % 7 == 0 else 0)
                duration = rnd.choice([rnd.random() * 10, rnd.random() * 1e5, 0.0, 0.0004, 0.0005, 123.4565])
                args = (rnd.choice(["127.0.0.1:4000", "-", "::1:80"]), rnd.choice(["GET", "POST"]),
                        rnd.choice(["/json", "/a b", '/q"x', "/b\\s", "/nl\nx", "/é", "/\u2028", "/\x7f"]),
                        rnd.choice(["1.1", "1.0"]), rnd.choice([200, 404]), rnd.choice([None, 0, 27]), duration,
                        rnd.choice([None, None, "5f0c2a", 'q"x', 42]))
                monkeypatch.setattr(time, "time", lambda: now)
                access.log(*args)
                client, method, target, version, status, size, duration, request_id = args
                if log_format == "text" and not target.isprintable():  # no forged lines
                    target = repr(target)[1:-1]
                message, values = access_log.MESSAGE, (client, method, target, version, status,
                                                       "-" if size is None else size, duration)
                if request_id is not None:  # RequestIDMiddleware's id, at the end of the line
                    message, values = message + access_log.REQUEST_ID, values + (str(request_id),)
                record = logging.LogRecord("catzilla.access", logging.INFO, __file__, 1, message, values, None)
                record.__dict__.update(client=client, method=method, path=target, status=status,
                                       duration_ms=round(duration, 3))
                if request_id is not None:
                    record.request_id = str(request_id)
                expected.append(handler.format(record))
            monkeypatch.undo()
            access.flush()
            loop.close()
            assert path.read_text(encoding="utf-8") == "\n".join(expected) + "\n", log_format
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved


def test_a_decoded_line_break_in_a_path_cannot_forge_a_line(tmp_path):
    # %0D%0A decodes to CR LF: written as they are, the text log would gain a line the
    # client wrote ("... [INFO] catzilla.access: forged"). Both ways of writing are checked:
    # direct lines, and records for a handler of the user's own.
    forged = "/a%0D%0A[2026-01-01%2000:00:00,000]%20[1]%20[INFO]%20catzilla.access:%20forged"
    target = tmp_path / "access.log"
    for env in ({}, {"ACCESS_FILE": str(target)}):
        with run_server("access_app:app", env=env) as s:
            with s.connect() as sock:
                sock.sendall(f"GET {forged} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                assert sock.recv(65536).startswith(b"HTTP/1.1 404")
            wait_for(lambda: "forged" in s.logs(), 5, message="the access line")
            time.sleep(0.2)
            text = s.logs() + (target.read_text() if env else "")
            assert not any(line.startswith("[2026-01-01") for line in text.splitlines()), text
            assert "/a\\r\\n[2026-01-01" in text


def test_the_request_id_is_in_the_access_line(tmp_path):
    # RequestIDMiddleware's id (issue 8): at the end of a text line, a field of a JSON one.
    for log_format in ("text", "json"):
        with run_server("mw_builtin_app:app", "--log-format", log_format) as s:
            r = httpx.get(s.url + "/async", headers={"X-Request-ID": "req-7f3a"})
            assert r.headers["x-request-id"] == "req-7f3a"
            made = httpx.get(s.url + "/async").headers["x-request-id"]
            wait_for(lambda: made in s.logs(), 5, message="the made id in the access line")
            lines = [line for line in s.logs().splitlines() if "catzilla.access" in line and "/async" in line]
            if log_format == "text":
                assert lines[0].endswith(' request_id=req-7f3a') and lines[1].endswith(f" request_id={made}")
            else:
                entries = [json.loads(line) for line in lines]
                assert [e["request_id"] for e in entries] == ["req-7f3a", made]
                assert entries[0]["message"].endswith(" request_id=req-7f3a") and entries[0]["status"] == 200
