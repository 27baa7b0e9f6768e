"""Open-loop overload against a running server: does it refuse the excess at once, keep the
admitted requests fast and its memory flat?

Requests arrive at `--rate` per second for `--duration` seconds, whatever the server does
(Poisson arrivals, or evenly spaced with --even): a closed-loop client would slow down with
the server and hide the overload. Each request goes on an idle keep-alive connection, or a
new one when none is idle. Latency is measured from the moment the request was *due*, so a
client that falls behind does not hide server latency (its lag is printed too).

    PYTHONPATH=tests/apps catzilla run ov_app:app --threads 40 --no-access-log &
    python loadtests/overload.py 'http://127.0.0.1:8000/sleep?t=0.05' --rate 1120 --duration 15 \\
        --pid $!

prints the counts by status, the median/p99 latency of the admitted (200) requests, the
slowest refusal (503) and the server's RSS (master and workers, from /proc) before, at its
peak during and after the run. Capacity of that server is threads / handler time
(40 / 0.05 s = 800/s); run at 1.0x for the reference, then 1.4x.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import resource
import statistics
import time
import urllib.parse

import uvloop

# Sub-millisecond: the loop's own clock (libuv's) counts whole milliseconds.
clock = time.perf_counter


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a master and its workers)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
        except OSError:
            pass
    return pids


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Load:
    def __init__(self, url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        self.request = f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        self.timeout = timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.latencies: dict[int, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter[str] = collections.Counter()
        self.retry_after_missing = 0
        self.connections = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def one(self, due: float) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        writer = None
        try:
            while self.idle:  # the newest idle connection, unless the server has closed it
                reader, writer = self.idle.pop()
                if not reader.at_eof() and not writer.is_closing():
                    break
                writer.close()
                writer = None
            if writer is None:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                self.connections += 1
            writer.write(self.request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.timeout)
            status = int(head[9:12])
            lower = head.lower()
            length = 0
            start = lower.find(b"content-length:")
            if start >= 0:
                length = int(lower[start + 15:lower.index(b"\r\n", start)])
            if length:
                await asyncio.wait_for(reader.readexactly(length), self.timeout)
            self.latencies[status].append(clock() - due)
            if status == 503 and b"retry-after:" not in lower:
                self.retry_after_missing += 1
            if b"connection: close" in lower:
                writer.close()
            else:
                self.idle.append((reader, writer))
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.errors[type(exc).__name__] += 1
            if writer is not None:
                writer.close()
        finally:
            self.in_flight -= 1


async def offer(load: Load, rate: float, duration: float, even: bool, drain: float,
                pid: int | None) -> dict[str, float | None]:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    rss = {"before": rss_mib(pid), "peak": rss_mib(pid)}
    started = due = clock()
    end = started + duration
    lag = 0.0
    sent = 0
    next_sample = started
    while True:
        due += 1.0 / rate if even else random.expovariate(rate)
        if due >= end:
            break
        wait = due - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        lag = max(lag, clock() - due)
        task = loop.create_task(load.one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
        if clock() >= next_sample and pid is not None:
            next_sample = clock() + 0.5
            rss["peak"] = max(rss["peak"] or 0.0, rss_mib(pid) or 0.0)
    if tasks:
        await asyncio.wait(set(tasks), timeout=drain)
    rss["after"] = rss_mib(pid)
    return {"sent": sent, "lag": lag, "unfinished": len(tasks), **rss}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(load: Load, run: dict[str, float | None], args: argparse.Namespace) -> None:
    sent = int(run["sent"] or 0)
    print(f"offered {sent} requests in {args.duration:g} s ({sent / args.duration:.0f}/s, "
          f"{'even' if args.even else 'Poisson'}); client lag max {run['lag'] * 1000:.1f} ms; "
          f"{load.connections} connections, {load.most_in_flight} in flight at most")
    for status in sorted(load.latencies):
        values = load.latencies[status]
        print(f"  {status}: {len(values):6d}  median {statistics.median(values) * 1000:8.1f} ms  "
              f"p99 {quantile(values, 0.99) * 1000:8.1f} ms  max {max(values) * 1000:8.1f} ms")
    if load.errors:
        print(f"  errors: {dict(load.errors)}")
    if run["unfinished"]:
        print(f"  unfinished after the {args.drain:g} s drain: {run['unfinished']}")
    if load.retry_after_missing:
        print(f"  503 without Retry-After: {load.retry_after_missing}")
    admitted = load.latencies.get(200, [])
    refused = load.latencies.get(503, [])
    summary = [f"admitted {len(admitted)}"]
    if admitted:
        summary.append(f"median {statistics.median(admitted) * 1000:.1f} ms, "
                       f"p99 {quantile(admitted, 0.99) * 1000:.1f} ms")
    summary.append(f"refused {len(refused)}")
    if refused:
        summary.append(f"slowest refusal {max(refused) * 1000:.1f} ms")
    print("summary: " + "; ".join(summary))
    if run["before"] is not None:
        print(f"server RSS: {run['before']:.1f} MiB before, {run['peak']:.1f} MiB peak, "
              f"{run['after']:.1f} MiB after ({run['after'] - run['before']:+.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="e.g. http://127.0.0.1:8000/sleep?t=0.05")
    parser.add_argument("--rate", type=float, required=True, help="requests per second offered")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of arrivals")
    parser.add_argument("--even", action="store_true", help="evenly spaced arrivals, not Poisson")
    parser.add_argument("--pid", type=int, help="the server's (master's) pid, for its RSS")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request read timeout")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="seconds to wait for answers after the last arrival")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one connection per request in flight
    load = Load(args.url, args.timeout)
    run = uvloop.run(offer(load, args.rate, args.duration, args.even, args.drain, args.pid))
    report(load, run, args)


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.1f} s)")
