"""What this process's memory is, as the kernel tells it (Catzilla 0.2.3's memory functions).

Numbers are about the calling process: under `catzilla run --workers N` that is one worker.
Resident size comes from /proc/self/statm, the peak from /proc/self/status (VmHWM); where
there is no /proc, from getrusage (peak only). jemalloc is reported as in use only when a
libjemalloc is mapped into this process (LD_PRELOAD=libjemalloc.so.2, say): Catzilla does not
bundle or switch allocators.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import sys
import tracemalloc
import typing

__all__ = [
    "get_memory_stats", "memory_usage_mb", "is_jemalloc_available", "is_jemalloc_enabled",
    "get_allocator_info", "optimize_memory", "reset_memory_stats", "enable_memory_profiling",
    "disable_memory_profiling",
]

_MB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(field.encode() + b":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak_bytes() -> int:
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _resident_bytes() -> tuple[int, int | None, str]:
    """(resident, virtual, where from)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            size, resident = statm.read().split()[:2]
        return int(resident) * _PAGE, int(size) * _PAGE, "/proc/self/statm"
    except OSError:
        return _peak_bytes(), None, "getrusage (peak; the current size is not available here)"


def _mapped_jemalloc() -> str | None:
    try:
        with open("/proc/self/maps", "rb") as maps:
            for line in maps:
                if b"jemalloc" in line:
                    return line.split()[-1].decode(errors="replace")
    except OSError:
        pass
    return None


def memory_usage_mb() -> float:
    """This process's resident set size, in MiB."""
    return _resident_bytes()[0] / _MB


def is_jemalloc_available() -> bool:
    """True only when jemalloc is loaded into this process."""
    return _mapped_jemalloc() is not None


is_jemalloc_enabled = is_jemalloc_available


def get_allocator_info() -> dict[str, typing.Any]:
    library = _mapped_jemalloc()
    return {
        "current_allocator": "jemalloc" if library else "system_malloc",
        "jemalloc_available": library is not None,
        "jemalloc_enabled": library is not None,
        "jemalloc_library": library,
        "malloc_trim_available": _malloc_trim() is not None,
    }


def get_memory_stats() -> dict[str, typing.Any]:
    """Resident and peak size of this process, the allocator, the garbage collector's
    counts and, while `enable_memory_profiling()` is on, Python's own allocations."""
    resident, virtual, source = _resident_bytes()
    library = _mapped_jemalloc()
    stats: dict[str, typing.Any] = {
        "pid": os.getpid(),
        "allocated_mb": resident / _MB,
        "rss_mb": resident / _MB,
        "vms_mb": virtual / _MB if virtual is not None else None,
        "peak_mb": _peak_bytes() / _MB,
        "source": source,
        "allocator": "jemalloc" if library else "system_malloc",
        "jemalloc_enabled": library is not None,
        "jemalloc_available": library is not None,
        "fragmentation_percent": None,  # not measured: it needs jemalloc's own statistics
        "gc_counts": list(gc.get_count()),
        "profiling": tracemalloc.is_tracing(),
    }
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        stats["python_allocated_mb"] = current / _MB
        stats["python_peak_mb"] = peak / _MB
    return stats


_trim: typing.Any = None


def _malloc_trim() -> typing.Any:
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _trim = False
    return _trim or None


def optimize_memory() -> bool:
    """Collect garbage, then give free heap pages back to the kernel (glibc's malloc_trim).
    True when memory was returned to the kernel."""
    gc.collect()
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def reset_memory_stats() -> bool:
    """Restart the peak (VmHWM) from the current size, where Linux allows it, and the
    profiler's peak while profiling. True when the kernel's peak was reset."""
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def enable_memory_profiling() -> bool:
    """Trace Python's allocations (tracemalloc: it slows every allocation down; for
    diagnosis, not for production)."""
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    return True


def disable_memory_profiling() -> None:
    tracemalloc.stop()
