"""The per-request Python cost of the worker, without sockets or a load generator.

Drives one HttpProtocol with an in-memory transport: each iteration feeds a wrk-like request
and waits for the response bytes, so what is measured is parsing, routing, parameter
binding, the handler and response encoding, stats included. Use it to profile before
optimising (the machine's noise hardly matters: the numbers are CPU time of one thread).

    python loadtests/profile_request.py                 # µs per request, per route
    python loadtests/profile_request.py --no-stats      # the same without the stats slot
    python loadtests/profile_request.py --profile /json # cProfile of one route
    python loadtests/profile_request.py -H "Origin: https://example.com" /json
    python loadtests/profile_request.py --access-log text /json  # with the access log on
    ACCESS_LOG=json bash loadtests/instr_profile.sh /json         # (the same, under callgrind)
    valgrind --tool=callgrind python loadtests/profile_request.py --count 2000 /json

With the access log on, the lines are written when the loop next runs: once per run unless
--iterate lets the loop run once after every request (the burst's write then counted per
request, the worst case a server meets when each loop iteration carries one request).

    ITERATE=1 ACCESS_LOG=text bash loadtests/instr_profile.sh /json  # per-request writes

--inline-batch is off here (INLINE_BATCH=1 turns it on): with one connection each request
would be a batch of its own, and the loop turn it costs would be counted as the request's.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import importlib, os  # noqa: E402
app = importlib.import_module(os.environ.get("BENCH_APP", "bench_app")).app  # noqa: E402

from catzilla.config import Config  # noqa: E402
from catzilla.logs import configure_logging  # noqa: E402
from catzilla.worker.protocol import HttpProtocol  # noqa: E402
from catzilla.worker.server import Worker  # noqa: E402

ROUTES = {"/json": b"/json", "/sync": b"/sync", "/items": b"/items/42?q=3"}


class Transport:
    """Just enough of asyncio.Transport for HttpProtocol."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...
    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default
    def is_closing(self) -> bool:
        return False
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def drive(worker: Worker, target: bytes, count: int, extra: bytes = b"", iterate: bool = False) -> float:
    """Seconds per request, over `count` sequential keep-alive requests."""
    request = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n" + extra + b"\r\n"
    protocol = HttpProtocol(worker)
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    for _ in range(count):
        transport.written.clear()
        protocol.data_received(request)
        if not transport.written:  # answered later (thread pool, Task): wait for it
            transport.waiter = loop.create_future()
            await transport.waiter
        if iterate:  # one loop iteration per request: what call_soon scheduled runs now
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    assert transport.written[0].startswith(b"HTTP/1.1 200"), transport.written[0][:60]
    return elapsed / count


async def main(args: argparse.Namespace) -> None:
    if args.access_log:  # lines written as a server writes them, to a file that keeps none
        configure_logging("info", args.access_log, os.devnull)
    config = Config(stats=args.stats, access_log=bool(args.access_log), loop_block_threshold=0,
                    inline_batch=args.inline_batch)
    worker = Worker(app, config, [])  # driven without sockets
    worker.build(asyncio.get_running_loop())
    worker._tick()
    routes = [args.route] if args.route else list(ROUTES)
    extra = b"".join(field.encode("latin-1") + b"\r\n" for field in args.header)
    for route in routes:
        target = ROUTES.get(route, route.encode())
        await drive(worker, target, 200, extra, args.iterate)  # warm up
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await drive(worker, target, args.count, extra, args.iterate)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            continue
        runs = [await drive(worker, target, args.count, extra, args.iterate) for _ in range(args.repeat)]
        print(f"{route:8s} {statistics.median(runs) * 1e6:6.2f} µs per request "
              f"(median of {args.repeat}, stats {'on' if args.stats else 'off'})")
    worker.pool.shutdown(wait=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("route", nargs="?", help="one of /json, /sync, /items, or a request target")
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stats", action=argparse.BooleanOptionalAction, default=True)
    # One connection makes a batch of one request per loop turn: the turn, not the request,
    # would be measured. A server's batches are measured by instr.sh and bench.sh.
    parser.add_argument("--inline-batch", action=argparse.BooleanOptionalAction,
                        default=bool(os.environ.get("INLINE_BATCH")))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("-H", "--header", action="append", default=[],
                        help='a request header field to send, e.g. "Origin: https://example.com"')

    parser.add_argument("--access-log", choices=["text", "json"], default=os.environ.get("ACCESS_LOG") or None,
                        help="log each request in this format (default: $ACCESS_LOG, else no access log)")
    parser.add_argument("--iterate", action=argparse.BooleanOptionalAction, default=bool(os.environ.get("ITERATE")),
                        help="let the loop run once after each request (default: $ITERATE)")
    uvloop.run(main(parser.parse_args()))
