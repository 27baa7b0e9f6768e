"""Memory a worker gives back to the system once a large response is gone.

glibc serves an allocation above its mmap threshold (128 KiB at first) with a mapping of
its own, unmapped on free. But after the first such free it raises the threshold to that
size (up to 32 MiB), so later large buffers (8 MiB responses held for slow readers, say)
come from the heap, which is seldom given back: measured with 40 clients that stall on an
8 MiB response each, RSS stayed at 197 MiB after they were gone, against 29 MiB with the
threshold fixed. Fixing it costs a mapping per large buffer, which is small next to
filling the buffer.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["return_large_buffers", "LARGE_BUFFER"]

logger = logging.getLogger("catzilla.worker")

# Buffers from this size on are mapped and unmapped on their own: well above any ordinary
# request or response, and glibc's default maximum for its dynamic threshold's start.
LARGE_BUFFER = 256 * 1024
M_MMAP_THRESHOLD = -3  # from glibc's malloc.h


def return_large_buffers(threshold: int = LARGE_BUFFER) -> bool:
    """Fix glibc's mmap threshold; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS: their allocators return memory themselves
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, threshold) != 1:
        logger.debug("mallopt(M_MMAP_THRESHOLD) refused; large buffers may stay in the heap")
        return False
    return True
