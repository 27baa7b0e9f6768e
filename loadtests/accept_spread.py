"""How new connections spread over worker processes: one inherited socket vs one
SO_REUSEPORT socket per worker (the measurement behind catzilla/master/listeners.py).

Forks N uvloop acceptors that answer each connection with their pid, then opens new
connections: sequentially, and in concurrent bursts. Then stops one worker and counts the
connections that stall or fail (per-slot sockets strand their share of the queue).

    python loadtests/accept_spread.py --workers 2 --connections 200
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import socket
import time

import uvloop


def acceptor(sockets: list[socket.socket]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(str(os.getpid()).encode())
            writer.close()

        for sock in sockets:
            await asyncio.start_server(answer, sock=sock)
        await loop.create_future()

    uvloop.run(main())


def bind(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def ask(port: int, timeout: float = 2.0) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            return conn.recv(32).decode() or "closed"
    except socket.timeout:
        return "stalled"
    except OSError as exc:
        return type(exc).__name__


def start(mode: str, workers: int) -> tuple[int, list[int], list[socket.socket]]:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    shared = bind(port) if mode == "shared" else None
    held: list[socket.socket] = []  # the master keeps every socket open, as ours does
    pids = []
    for _ in range(workers):
        sock = shared if shared is not None else bind(port)
        held.append(sock)
        pid = os.fork()
        if pid == 0:
            acceptor([sock])
            os._exit(0)
        pids.append(pid)
    time.sleep(0.5)
    return port, pids, held


def burst(port: int, count: int) -> list[str]:
    async def one() -> str:
        return await asyncio.to_thread(ask, port)

    async def many() -> list[str]:
        return await asyncio.gather(*(one() for _ in range(count)))

    return asyncio.run(many())


def run(mode: str, workers: int, connections: int) -> None:
    port, pids, held = start(mode, workers)
    try:
        sequential = collections.Counter(ask(port) for _ in range(connections))
        concurrent = collections.Counter(burst(port, connections))
        # One worker stops taking connections (as while it is replaced): what happens to
        # the connections the kernel hands its way?
        os.kill(pids[0], signal.SIGSTOP)
        stopped = collections.Counter(ask(port, timeout=1.0) for _ in range(40))
        os.kill(pids[0], signal.SIGCONT)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for sock in held:
            sock.close()
    names = {str(pid): f"worker{i}" for i, pid in enumerate(pids)}
    show = lambda c: ", ".join(f"{names.get(k, k)}={v}" for k, v in sorted(c.items(), key=lambda kv: names.get(kv[0], kv[0])))
    print(f"{mode:9s} sequential: {show(sequential)}")
    print(f"{mode:9s} concurrent: {show(concurrent)}")
    print(f"{mode:9s} one worker stopped, 40 new connections: {show(stopped)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    for mode in ("shared", "per-slot"):
        run(mode, args.workers, args.connections)
