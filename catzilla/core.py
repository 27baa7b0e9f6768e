"""Live statistics of the running server (DESIGN.md, "Stats contract")."""
from __future__ import annotations

import typing

from .stats import BUCKETS, WorkerStats, percentile

__all__ = ["get_handler_stats", "get_performance_metrics"]

_current: WorkerStats | None = None


def install(stats: WorkerStats | None) -> None:
    """Called by the worker at start-up: the process whose numbers the functions report."""
    global _current
    _current = stats


def _workers() -> list[WorkerStats]:
    return [_current] if _current is not None else []


def get_handler_stats() -> dict[str, typing.Any]:
    workers = _workers()
    by_kind = {kind: {"requests": 0, "errors": 0, "in_flight": 0} for kind in ("sync", "async")}
    routes: dict[str, dict[str, typing.Any]] = {}
    pool = {"size": 0, "busy": 0, "queued": 0}
    for worker in workers:
        for route in worker.routes:
            kind = by_kind[route.kind]
            kind["requests"] += route.requests
            kind["errors"] += route.errors
            kind["in_flight"] += route.in_flight
            entry = routes.setdefault(route.key, {
                "kind": route.kind, "requests": 0, "errors": 0, "histogram": [0] * BUCKETS})
            entry["requests"] += route.requests
            entry["errors"] += route.errors
            entry["histogram"] = [a + b for a, b in zip(entry["histogram"], route.histogram)]
        if worker.pool is not None:
            for key, value in worker.pool.snapshot().items():
                pool[key] += value
    for entry in routes.values():
        histogram = entry.pop("histogram")
        entry["p50_ms"] = percentile(histogram, 0.50)
        entry["p99_ms"] = percentile(histogram, 0.99)
    return {
        "workers": len(workers),
        "requests": sum(w.requests for w in workers),
        "by_kind": by_kind,
        "routes": routes,
        "per_worker": [{"pid": w.pid, "requests": w.requests, "in_flight": w.in_flight} for w in workers],
        "thread_pool": pool,
    }


def get_performance_metrics() -> dict[str, typing.Any]:
    workers = _workers()
    stats = get_handler_stats()
    histograms = {}
    for worker in workers:
        for route in worker.routes:
            merged = histograms.setdefault(route.key, [0] * BUCKETS)
            histograms[route.key] = [a + b for a, b in zip(merged, route.histogram)]
    stats["latency_histograms"] = {
        key: {"bucket_upper_bounds_ms": [(1 << i) / 1000.0 for i in range(BUCKETS)], "counts": counts}
        for key, counts in histograms.items() if any(counts)
    }
    stats["requests_per_second"] = sum(w.requests_per_second() for w in workers)
    stats["loop_lag_ms"] = max((w.loop_lag * 1000.0 for w in workers), default=0.0)
    stats["loop_lag_max_ms"] = max((w.loop_lag_max * 1000.0 for w in workers), default=0.0)
    stats["bytes_in"] = sum(w.bytes_in for w in workers)
    stats["bytes_out"] = sum(w.bytes_out for w in workers)
    stats["uptime_s"] = max((w.uptime() for w in workers), default=0.0) if workers else 0.0
    return stats
