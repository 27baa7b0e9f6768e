"""CPU-bound `def` handlers beside an async /ping: in the thread pool, and in the CPU lane.

    python3 loadtests/cpu_lane.py                 # the table of README's "The CPU lane"
    python3 loadtests/cpu_lane.py --intervals     # the switch-interval table

One worker (tests/apps/cpu_app.py). A client sends one /ping at a time over a keep-alive
connection and records each round trip, for a few seconds per row:

    solo           nothing else runs
    pool           two requests to a pure-Python CPU loop (/spin/200) are always in flight
    lane           the same two requests to the same loop marked cpu_bound=True (/lane-spin/200)

--intervals adds, per --switch-interval, the pool row and the throughput of short `def`
handlers (/pool/0) under 8 concurrent connections, to show what a shorter interval costs.
Short on purpose (seconds per row): not a benchmark of the peers, and the machine is shared.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "apps"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(APPS)]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "catzilla", "run", "cpu_app:app", "--port", str(self.port),
             "--workers", "1", "--no-access-log", *args],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if b"pong" in get(self.port, "/ping"):
                    time.sleep(1.0)  # the lane processes boot after the worker
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def get(port: int, path: str, sock: socket.socket | None = None) -> bytes:
    own = sock is None
    if sock is None:
        sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(65536)
        return body
    finally:
        if own:
            sock.close()


def one_at_a_time(port: int, seconds: float) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of one client sending /ping after /ping."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        get(port, "/ping", sock)
        times.append(time.perf_counter() - now)
    sock.close()
    times.sort()
    return len(times) / seconds, 1000 * times[len(times) // 2], 1000 * times[int(len(times) * 0.99)]


class Background:
    """`count` clients each keeping one request to `path` in flight."""

    def __init__(self, port: int, path: str, count: int = 2) -> None:
        self.stop = threading.Event()
        self.done = 0
        self.threads = [threading.Thread(target=self._run, args=(port, path), daemon=True) for _ in range(count)]
        for thread in self.threads:
            thread.start()
        time.sleep(0.3)

    def _run(self, port: int, path: str) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        while not self.stop.is_set():
            get(port, path, sock)
            self.done += 1
        sock.close()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def concurrent_throughput(port: int, path: str, seconds: float, connections: int = 8) -> float:
    async def client(deadline: float) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        count = 0
        request = f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode()
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            count += 1
        writer.close()
        return count

    async def main() -> int:
        deadline = time.perf_counter() + seconds
        return sum(await asyncio.gather(*(client(deadline) for _ in range(connections))))

    return asyncio.run(main()) / seconds


def row(name: str, result: tuple[float, float, float], extra: str = "") -> None:
    rate, p50, p99 = result
    print(f"| {name:<44} | {rate:>9,.0f} | {p50:>7.2f} | {p99:>7.2f} |{extra}", flush=True)


def table(seconds: float, lane_only: bool = False) -> None:
    print("| one /ping at a time, 1 worker                | req/s     | p50 ms  | p99 ms  |")
    print("|----------------------------------------------|-----------|---------|---------|")
    for label, args in (("5 ms switch", ("--switch-interval", "0.005")),
                        ("default switch", ()),
                        ("--cpu-nice 0", ("--cpu-nice", "0"))):
        if lane_only and args and args[0] == "--switch-interval":
            continue
        server = Server(*args)
        try:
            row(f"solo, {label}", one_at_a_time(server.port, seconds))
            if not lane_only and args[:1] != ("--cpu-nice",):
                busy = Background(server.port, "/spin/200")
                row(f"2 CPU-bound def in the pool, {label}", one_at_a_time(server.port, seconds))
                busy.close()
            busy = Background(server.port, "/lane-spin/200")
            row(f"2 CPU-bound def in the CPU lane, {label}", one_at_a_time(server.port, seconds),
                f" {busy.done} CPU-bound requests done")
            busy.close()
        finally:
            server.stop()


def intervals(seconds: float) -> None:
    print("| --switch-interval | solo p99 ms | 2 CPU-bound in pool: /ping req/s, p99 ms | /pool/0 req/s, 8 connections |")
    print("|-------------------|-------------|------------------------------------------|------------------------------|")
    for interval in ("0.005", "0.002", "0.001", "0.0005"):
        server = Server("--switch-interval", interval)
        try:
            solo = one_at_a_time(server.port, seconds)
            busy = Background(server.port, "/spin/200")
            loaded = one_at_a_time(server.port, seconds)
            busy.close()
            sync_rate = concurrent_throughput(server.port, "/pool/0", seconds)
        finally:
            server.stop()
        print(f"| {float(interval) * 1000:>14g} ms | {solo[2]:>11.2f} | {loaded[0]:>17,.0f} req/s, p99 {loaded[2]:>7.2f} | "
              f"{sync_rate:>28,.0f} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per row")
    parser.add_argument("--intervals", action="store_true", help="the switch-interval table instead")
    parser.add_argument("--lane-only", action="store_true", help="only the solo and CPU lane rows")
    options = parser.parse_args()
    if options.intervals:
        intervals(options.seconds)
    else:
        table(options.seconds, options.lane_only)
