"""The per-request Python cost of an ASGI application, without a server or a socket:
each iteration calls `app(scope, receive, send)` once and counts the messages sent.
Compares our app as an ASGI application (the bridge) with FastAPI's on the same routes,
both in this process; CPU time of one thread, so the machine's noise matters little.

    python loadtests/profile_asgi.py                   # µs per request, ours and FastAPI
    python loadtests/profile_asgi.py --profile ours /json
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
import typing
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

ROUTES = {"/json": ("/json", b""), "/items": ("/items/42", b"q=3")}


def apps() -> dict[str, object]:
    from bench_app import app as ours

    found: dict[str, object] = {"ours": ours}
    import os

    # shared/bench beside the main checkout (../shared), or where BENCH_DIR says
    bench = os.environ.get("BENCH_DIR") or next(
        (str(p) for p in (HERE.parent.parent / "shared" / "bench", Path("/work/shared/bench")) if p.is_dir()), "")
    try:
        sys.path.insert(0, str(Path(bench) / "peers"))
        from fastapi_app import app as fastapi  # type: ignore[import-not-found]

        found["fastapi"] = fastapi
    except ImportError:
        print("(FastAPI is not installed here: ours only)")
    return found


async def lifespan(app) -> typing.Callable[[], typing.Awaitable[None]]:
    """Start `app`'s lifespan; returns what ends it."""
    queue: asyncio.Queue[dict] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    replies: asyncio.Queue[dict] = asyncio.Queue()
    task = asyncio.get_running_loop().create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue.get, replies.put))
    await replies.get()

    async def end() -> None:
        await queue.put({"type": "lifespan.shutdown"})
        await replies.get()
        await task

    return end


async def drive(app, path: str, query: bytes, count: int) -> float:
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": query, "headers": [(b"host", b"127.0.0.1:8000")],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000), "state": {}}
    request = {"type": "http.request", "body": b"", "more_body": False}
    status = []

    async def receive() -> dict:
        return request

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    started = time.perf_counter()
    for _ in range(count):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - started
    assert status and all(s == 200 for s in status), status[:3]
    return elapsed / count


async def main(args: argparse.Namespace) -> None:
    found = apps()
    names = [args.app] if args.app else list(found)
    for name in names:
        app = found[name]
        end = await lifespan(app)
        for route in ([args.route] if args.route else list(ROUTES)):
            path, query = ROUTES[route]
            await drive(app, path, query, 500)  # warm up
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await drive(app, path, query, args.count)
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
                continue
            runs = [await drive(app, path, query, args.count) for _ in range(args.repeat)]
            print(f"{name:8s} {route:7s} {statistics.median(runs) * 1e6:7.2f} µs per request (median of {args.repeat})")
        await end()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", nargs="?", choices=["ours", "fastapi"])
    parser.add_argument("route", nargs="?", choices=list(ROUTES))
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    import uvloop

    uvloop.run(main(parser.parse_args()))
