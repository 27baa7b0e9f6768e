"""The stats block in Prometheus' text exposition format (version 0.0.4)."""
from __future__ import annotations

import typing

from ..stats import lane_slots, merge_routes, websocket_totals, worker_slots

__all__ = ["render_prometheus"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _histogram(lines: list[str], name: str, labels: str, counts: typing.Sequence[int], count: int,
               sum_us: int) -> None:
    """One series of a histogram family. Every bucket, always: series that share their `le`
    values can be summed and fed to histogram_quantile()."""
    cumulative = 0
    for bucket, hits in enumerate(counts):
        cumulative += hits
        lines.append(f'{name}_bucket{{{labels},le="{_bound(bucket)}"}} {cumulative}')
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {count}')
    lines.append(f"{name}_sum{{{labels}}} {sum_us / 1e6}")
    lines.append(f"{name}_count{{{labels}}} {count}")


def _bound(bucket: int) -> str:
    return repr((1 << bucket) / 1_000_000)  # bucket b holds latencies below 2**b µs


def render_prometheus(snapshot: dict[str, typing.Any]) -> str:
    lines: list[str] = []

    def family(name: str, kind: str, help: str) -> None:
        lines.append(f"# HELP {name} {help}")
        lines.append(f"# TYPE {name} {kind}")

    routes = merge_routes(snapshot)
    labels = {}
    for key, totals in routes.items():
        method, _, path = key.partition(" ")
        labels[key] = f'route="{_escape(path)}",method="{_escape(method)}",kind="{totals.kind}"'

    family("catzilla_requests_total", "counter", "Requests answered, per route.")
    for key, totals in routes.items():
        lines.append(f"catzilla_requests_total{{{labels[key]}}} {totals.requests}")
    family("catzilla_request_errors_total", "counter", "Requests answered with a 5xx status.")
    for key, totals in routes.items():
        lines.append(f"catzilla_request_errors_total{{{labels[key]}}} {totals.errors}")
    family("catzilla_requests_in_flight", "gauge", "Requests being handled right now.")
    for key, totals in routes.items():
        lines.append(f"catzilla_requests_in_flight{{{labels[key]}}} {totals.in_flight}")
    family("catzilla_loop_blocked_total", "counter",
           "Times an async handler kept the event loop busy past the threshold.")
    for key, totals in routes.items():
        lines.append(f"catzilla_loop_blocked_total{{{labels[key]}}} {totals.blocked}")
    family("catzilla_request_duration_seconds", "histogram", "Time from request to response.")
    for key, totals in routes.items():
        _histogram(lines, "catzilla_request_duration_seconds", labels[key], totals.histogram,
                   totals.requests, totals.duration_us)

    measured = {key: totals for key, totals in routes.items() if totals.kind in ("sync", "cpu_lane")}
    family("catzilla_handler_cpu_seconds", "histogram",
           "CPU time of the handler's own thread per call (sync and CPU-lane routes).")
    for key, totals in measured.items():
        _histogram(lines, "catzilla_handler_cpu_seconds", labels[key], totals.cpu_histogram,
                   totals.cpu_calls, totals.cpu_us)
    family("catzilla_handler_wall_seconds_total", "counter",
           "Wall time of the handler calls measured for CPU time (their ratio is the CPU share).")
    for key, totals in measured.items():
        lines.append(f"catzilla_handler_wall_seconds_total{{{labels[key]}}} {totals.wall_us / 1e6}")
    family("catzilla_handler_cpu_bound", "gauge",
           "1 when most of the handler's wall time is CPU time (it holds the GIL): see README, CPU lane.")
    for key, totals in measured.items():
        lines.append(f"catzilla_handler_cpu_bound{{{labels[key]}}} {int(totals.cpu_bound)}")

    lanes = lane_slots(snapshot)
    family("catzilla_cpu_lane_processes", "gauge", "CPU-lane processes running cpu_bound handlers.")
    lines.append(f"catzilla_cpu_lane_processes {len(lanes)}")
    family("catzilla_cpu_lane_busy", "gauge", "CPU-lane processes running a job right now.")
    lines.append(f"catzilla_cpu_lane_busy {sum(s['in_flight'] for s in lanes)}")

    slots = worker_slots(snapshot)
    retired = snapshot["retired"]
    family("catzilla_workers", "gauge", "Worker processes counting into this block.")
    lines.append(f"catzilla_workers {len(slots)}")
    for name, field, help in (
        ("catzilla_thread_pool_threads", "pool_size", "Threads for def handlers, all workers."),
        ("catzilla_thread_pool_busy", "pool_busy", "Pool threads running a handler."),
        ("catzilla_thread_pool_queued", "pool_queued", "Sync calls waiting for a pool thread."),
    ):
        family(name, "gauge", help)
        lines.append(f"{name} {sum(s[field] for s in slots)}")
    family("catzilla_event_loop_lag_seconds", "gauge", "Scheduling delay of each worker's loop.")
    for s in slots:
        lines.append(f'catzilla_event_loop_lag_seconds{{pid="{s["pid"]}"}} {s["loop_lag_us"] / 1e6}')
    websockets = websocket_totals(snapshot)
    for name, kind, value, help in (
        ("catzilla_websockets_open", "gauge", websockets["open"], "WebSocket connections open now."),
        ("catzilla_websocket_connections_total", "counter", websockets["accepted"], "WebSocket connections accepted."),
        ("catzilla_websocket_messages_received_total", "counter", websockets["messages_in"],
         "WebSocket messages received from clients."),
        ("catzilla_websocket_messages_sent_total", "counter", websockets["messages_out"],
         "WebSocket messages sent to clients."),
    ):
        family(name, kind, help)
        lines.append(f"{name} {value}")
    family("catzilla_received_bytes_total", "counter", "Request bytes read.")
    lines.append(f"catzilla_received_bytes_total {retired['bytes_in'] + sum(s['bytes_in'] for s in slots)}")
    family("catzilla_sent_bytes_total", "counter", "Response bytes written.")
    lines.append(f"catzilla_sent_bytes_total {retired['bytes_out'] + sum(s['bytes_out'] for s in slots)}")
    return "\n".join(lines) + "\n"
