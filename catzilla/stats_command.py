"""`catzilla stats` (the command line's side, beside catzilla.cli): a live, top-like table of a running server, read from its stats block."""
from __future__ import annotations

import sys
import time
import typing

from .stats_report import handler_stats
from .stats import StatsBoard, board_path, find_boards, merge_routes, percentile, worker_slots

__all__ = ["run_top", "render"]


def _locate(pid: int | None, path: str | None) -> str:
    if path:
        return path
    if pid:
        return board_path(pid)
    boards = find_boards()
    if not boards:
        raise FileNotFoundError("no running Catzilla server found (is it started with stats on?)")
    return boards[0]


def render(snapshot: dict[str, typing.Any], previous: dict[str, typing.Any] | None, interval: float) -> str:
    stats = handler_stats(snapshot)
    routes = merge_routes(snapshot)
    before = merge_routes(previous) if previous is not None else {}
    total_before = handler_stats(previous)["requests"] if previous is not None else stats["requests"]
    rate = (stats["requests"] - total_before) / interval if previous is not None else 0.0
    pool = stats["thread_pool"]
    lag_ms = max((s["loop_lag_us"] / 1000 for s in worker_slots(snapshot)), default=0.0)
    lane = stats["cpu_lane"]
    sockets = stats["websockets"]
    lines = [
        f"workers {stats['workers']}   requests {stats['requests']}   {rate:,.1f} req/s   "
        f"pool {pool['busy']}/{pool['size']} busy, {pool['queued']} queued   loop lag {lag_ms:.1f} ms"
        + (f"   cpu lane {lane['busy']}/{lane['processes']} busy" if lane["processes"] else "")
        + (f"   websockets {sockets['open']} open, {sockets['accepted']} accepted, "
           f"{sockets['messages_in']} msg in, {sockets['messages_out']} msg out" if sockets["accepted"] else ""),
        "   ".join(f"{kind}: {v['requests']} req, {v['errors']} err, {v['in_flight']} in flight"
                   for kind, v in stats["by_kind"].items()),
        "",
        f"{'route':<40} {'kind':<6} {'req/s':>9} {'requests':>10} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'blocked':>8} {'cpu p50':>8} {'cpu p99':>8} {'cpu%':>5}",
    ]
    for key, totals in sorted(routes.items(), key=lambda item: -item[1].requests):
        old = before.get(key)
        route_rate = (totals.requests - old.requests) / interval if old is not None else 0.0
        p50 = percentile(totals.histogram, 0.5)
        p99 = percentile(totals.histogram, 0.99)
        cpu_p50, cpu_p99 = percentile(totals.cpu_histogram, 0.5), percentile(totals.cpu_histogram, 0.99)
        share = totals.cpu_share
        lines.append(
            f"{key[:40]:<40} {totals.kind:<6} {route_rate:>9.1f} {totals.requests:>10} {totals.errors:>7} "
            f"{'-' if p50 is None else f'{p50:.3f}':>8} {'-' if p99 is None else f'{p99:.3f}':>8} {totals.blocked:>8} "
            f"{'-' if cpu_p50 is None else f'{cpu_p50:.3f}':>8} {'-' if cpu_p99 is None else f'{cpu_p99:.3f}':>8} "
            f"{'-' if share is None else f'{share * 100:.0f}':>5}" + ("  CPU-BOUND" if totals.cpu_bound else ""))
    return "\n".join(lines)


def run_top(pid: int | None = None, path: str | None = None, interval: float = 1.0,
            once: bool = False, out: typing.TextIO = sys.stdout) -> int:
    try:
        board = StatsBoard.open(_locate(pid, path))
    except (OSError, ValueError) as exc:
        print(f"catzilla stats: {exc}", file=sys.stderr)
        return 1
    previous = None
    try:
        if once:  # two looks `interval` apart, so the table has rates
            previous = board.snapshot()
            time.sleep(interval)
        while True:
            snapshot = board.snapshot()
            table = render(snapshot, previous, interval)
            if once:
                print(table, file=out)
                out.flush()
                return 0
            out.write("\x1b[H\x1b[2J" + table + "\n")  # home the cursor, clear the screen
            out.flush()
            previous = snapshot
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `catzilla stats --once | head`
        sys.stderr.close()
        return 0
