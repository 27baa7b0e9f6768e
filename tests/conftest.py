"""Test harness: a real `python -m catzilla run` process where the wire matters, the
TestClient (the same protocol, router, executor and pool, in memory) where it does not.

`run_server("module:app", *cli_args)` starts one on a free loopback port, waits until it
accepts connections and yields a `Server`; on exit it sends SIGTERM and waits for the exit.
`app_client("module:app", **settings)` yields a TestClient of that app with the server's
defaults (500s answered, not raised; redirects not followed) and the logs it wrote.
Apps for the tests live in tests/apps/ (on PYTHONPATH), examples/ is on PYTHONPATH too.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
EXAMPLES = ROOT / "examples"


def load_test_app(name: str):
    """Import an app module of tests/apps/ in the test process (for in-process checks)."""
    import importlib

    _apps_on_path()
    return importlib.import_module(name)


def _apps_on_path() -> None:
    if str(APPS) not in sys.path:
        sys.path.insert(0, str(APPS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen, host: str, port: int, log_path: Path) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A raw TCP connection to the server, for malformed input and protocol tests."""
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        return stop_process(self.proc, sig, timeout)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    """Signal `proc` (if still running), wait for it, SIGKILL it after `timeout`."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_listening(host: str, port: int, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def run_server(
    target: str,
    *args: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 20.0,
) -> Iterator[Server]:
    host, port = "127.0.0.1", free_port()
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(APPS), str(EXAMPLES), full_env.get("PYTHONPATH", "")]
    )
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.update(env or {})
    log = tempfile.NamedTemporaryFile(prefix="catzilla-test-", suffix=".log", delete=False)
    cmd = [sys.executable, "-m", "catzilla", "run", target,
           "--host", host, "--port", str(port), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(proc, host, port, Path(log.name))
    try:
        if not wait_listening(host, port, proc, ready_timeout):
            server.stop(signal.SIGKILL)
            raise RuntimeError(f"server {cmd} did not start:\n{server.logs()}")
        yield server
    finally:
        server.stop()
        log.close()
        os.unlink(log.name)


def wait_for(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns something true (returned), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}; last: {last!r}")


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One Content-Length framed response from a keep-alive connection; fails on a close
    before it is whole, and on bytes beyond it that arrived with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a response body")
        body += chunk
    assert len(body) == length, f"bytes beyond the response: {body[length:]!r}"
    return status, headers, body


def read_responses(sock: socket.socket, count: int, timeout: float = 5.0) -> list[tuple[bytes, bytes]]:
    """Read `count` Content-Length framed responses (or fewer, if the server closes or goes
    quiet for `timeout`): pipelined responses may arrive in one read, which read_response
    refuses."""
    sock.settimeout(timeout)
    data, responses = b"", []
    while len(responses) < count:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) >= length:
                responses.append((head, rest[:length]))
                data = rest[length:]
                continue
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return responses


@pytest.fixture
def serve() -> Iterator:
    """Factory fixture: `server = serve("module:app", "--threads", "8")`."""
    with contextlib.ExitStack() as stack:
        yield lambda target, *a, **kw: stack.enter_context(run_server(target, *a, **kw))


class _LogText(logging.Handler):
    """Every log record, formatted as the server's text log writes it."""

    def __init__(self) -> None:
        from catzilla.logs import TEXT_FORMAT

        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter(TEXT_FORMAT))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def _fresh_import(module: str, env: dict[str, str]) -> Iterator:
    """`module` imported anew with `env` in os.environ, as a server process would import it;
    the module imported before (if any) is back in sys.modules afterwards."""
    import importlib

    _apps_on_path()
    saved_env = {key: os.environ.get(key) for key in env}
    saved_module = sys.modules.pop(module, None)
    os.environ.update(env)
    try:
        yield importlib.import_module(module)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sys.modules.pop(module, None)
        if saved_module is not None:
            sys.modules[module] = saved_module


@contextlib.contextmanager
def app_client(target: str, env: dict[str, str] | None = None, base_url: str = "http://testserver",
               **settings) -> Iterator:
    """A TestClient of `module:app` (tests/apps/) with Config(**settings) and the server's
    behaviour where the TestClient's defaults differ (a crash is a 500 and a log line, a
    redirect is an answer, the client is 127.0.0.1); `client.logs()` is what the server
    would have logged. With `env`, the module is imported anew with those variables set."""
    module, _, name = target.partition(":")
    if env:
        with _fresh_import(module, env):
            with app_client(f"{module}:{name}", base_url=base_url, **settings) as client:
                yield client
        return
    from catzilla.config import Config
    from catzilla.testclient import TestClient

    app = getattr(load_test_app(module), name or "app")
    settings.setdefault("access_log", False)
    settings.setdefault("loop_block_threshold", 0)
    handler = _LogText()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with TestClient(app, base_url, raise_server_exceptions=False, follow_redirects=False,
                        client=("127.0.0.1", 50000), config=Config(**settings)) as client:
            client.logs = lambda: "\n".join(handler.lines)
            yield client
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
