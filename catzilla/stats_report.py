"""Live statistics of the running server (DESIGN.md, "Stats contract"), summed over all
workers from the shared stats block, readable from any handler of any worker (the public
names are re-exported by catzilla.core, where the seed document imports them from)."""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
import typing

from .stats import (BUCKETS, StatsBoard, bucket_upper_ms, empty_snapshot, lane_slots, merge_routes, percentile,
                    websocket_totals, worker_slots)

__all__ = ["get_handler_stats", "get_performance_metrics", "StatsReader"]

# requests per second is averaged over this many seconds of once-a-second samples
RATE_WINDOW = 10

logger = logging.getLogger("catzilla.stats")


class StatsReader:
    """The current process's view of the board, with a short history for rates."""

    def __init__(self, board: StatsBoard) -> None:
        # Reads on the worker's event loop (made on its thread) must not wait on shared
        # memory: they get the loop's patience. A read from a pool thread (a `def` stats
        # route) can wait out a fold, and must: the loop's fallback is the last values read,
        # however old.
        self.board = board.on_event_loop()
        self.patient_board = board
        self.loop_thread = threading.get_ident()
        self.samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=RATE_WINDOW + 1)
        self.skipping = False  # samples are being skipped: the block stays mid-update

    def sample(self) -> None:
        """Once a second, from the worker's loop. A block that stays mid-update (a fold
        longer than the loop's patience, or a tampered file) skips the sample: said once,
        and once more when sampling works again."""
        try:
            requests = self.board.totals()[0]
        except RuntimeError as exc:
            if not self.skipping:
                self.skipping = True
                logger.warning("worker %d: stats samples skipped while the shared stats block "
                               "stays mid-update (%s)", os.getpid(), exc)
            return
        if self.skipping:
            self.skipping = False
            logger.info("worker %d: stats samples resumed", os.getpid())
        self.samples.append((time.monotonic(), requests))

    def requests_per_second(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, r0), (t1, r1) = self.samples[0], self.samples[-1]
        return (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0


_reader: StatsReader | None = None
_enabled = False


def install(reader: StatsReader | None, enabled: bool = True) -> None:
    """Called by the worker at start-up; `enabled` is False under --no-stats."""
    global _reader, _enabled
    _reader, _enabled = reader, reader is not None and enabled


def _snapshot() -> dict[str, typing.Any]:
    if _reader is None:
        return empty_snapshot()
    if threading.get_ident() == _reader.loop_thread:
        return _reader.board.snapshot()
    return _reader.patient_board.snapshot()


def handler_stats(snapshot: dict[str, typing.Any]) -> dict[str, typing.Any]:
    slots = worker_slots(snapshot)
    lanes = lane_slots(snapshot)
    by_kind = {kind: {"requests": 0, "errors": 0, "in_flight": 0} for kind in ("sync", "async")}
    routes = {}
    for key, totals in merge_routes(snapshot).items():
        # None for the unmatched row (no handler ran); a CPU lane's handlers are `def` ones
        kind = by_kind.get("sync" if totals.kind == "cpu_lane" else totals.kind)
        if kind is not None:
            kind["requests"] += totals.requests
            kind["errors"] += totals.errors
            kind["in_flight"] += totals.in_flight
        routes[key] = {
            "kind": totals.kind, "requests": totals.requests, "errors": totals.errors,
            "in_flight": totals.in_flight, "loop_blocked": totals.blocked,
            "p50_ms": percentile(totals.histogram, 0.50),
            "p99_ms": percentile(totals.histogram, 0.99),
        }
        if totals.kind in ("sync", "cpu_lane"):  # the handler's own thread CPU time per call
            routes[key].update({
                "cpu_ms_p50": percentile(totals.cpu_histogram, 0.50),
                "cpu_ms_p99": percentile(totals.cpu_histogram, 0.99),
                "cpu_share": None if totals.cpu_share is None else round(totals.cpu_share, 3),
                "cpu_bound": totals.cpu_bound,
            })
    return {
        "enabled": _enabled,  # False under --no-stats: every count below stays 0
        "workers": len(slots),
        "requests": snapshot["retired"]["requests"] + sum(s["requests"] for s in slots),
        "by_kind": by_kind,
        "routes": routes,
        "per_worker": [{"pid": s["pid"], "requests": s["requests"], "in_flight": s["in_flight"]}
                       for s in slots],
        "thread_pool": {
            "size": sum(s["pool_size"] for s in slots),
            "busy": sum(s["pool_busy"] for s in slots),
            "queued": sum(s["pool_queued"] for s in slots),
        },
        # Processes running `cpu_bound` handlers (see catzilla/worker/cpu_lane.py): the jobs
        # they ran (each is also one of the requests above) and those running now.
        # WebSocket connections: open now, accepted since the start (the gone workers' too),
        # and the messages received from and sent to clients.
        "websockets": websocket_totals(snapshot),
        "cpu_lane": {
            "processes": len(lanes),
            "busy": sum(s["in_flight"] for s in lanes),
            "jobs": sum(s["requests"] for s in lanes),
            "per_process": [{"pid": s["pid"], "jobs": s["requests"], "busy": s["in_flight"]} for s in lanes],
        },
    }


def get_handler_stats() -> dict[str, typing.Any]:
    return handler_stats(_snapshot())


def get_performance_metrics() -> dict[str, typing.Any]:
    snapshot = _snapshot()
    metrics = handler_stats(snapshot)
    slots = worker_slots(snapshot)
    retired = snapshot["retired"]
    metrics["latency_histograms"] = {
        key: {"bucket_upper_bounds_ms": [bucket_upper_ms(b) for b in range(BUCKETS)],
              "counts": totals.histogram,
              "mean_ms": round(totals.duration_us / totals.requests / 1000.0, 3) if totals.requests else None}
        for key, totals in merge_routes(snapshot).items() if totals.requests
    }
    metrics["requests_per_second"] = round(_reader.requests_per_second(), 2) if _reader else 0.0
    metrics["loop_lag_ms"] = max((s["loop_lag_us"] / 1000.0 for s in slots), default=0.0)
    metrics["loop_lag_max_ms"] = max((s["loop_lag_max_us"] / 1000.0 for s in slots), default=0.0)
    metrics["bytes_in"] = retired["bytes_in"] + sum(s["bytes_in"] for s in slots)
    metrics["bytes_out"] = retired["bytes_out"] + sum(s["bytes_out"] for s in slots)
    return metrics
