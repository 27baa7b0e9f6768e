"""Heartbeats from workers to the master through shared memory.

An anonymous shared mapping created before the first fork: two doubles per worker slot
(state, time of the last beat on CLOCK_MONOTONIC, which all processes share). A worker
writes its two from a callback of its own event loop, so a loop that is
blocked stops beating even if other threads run. Aligned 8-byte stores are atomic on the
machines we run on, so the master never reads a torn time.
"""
from __future__ import annotations

import mmap
import struct
import time

__all__ = ["Heartbeats", "BOOTING", "READY", "RETIRING", "MAX_SLOTS"]

MAX_SLOTS = 1024  # far above any core count; TTIN beyond it is refused
# A worker's state: booting, serving, or serving its last requests before it exits on
# its own (--max-requests, or its master is gone), which the master must not take for a crash.
BOOTING, READY, RETIRING = 0.0, 1.0, 2.0
_SLOT = struct.Struct("dd")


class Heartbeats:
    """Every worker slot's state and last beat; indexed by slot_index."""

    def __init__(self, slots: int = MAX_SLOTS) -> None:
        self.slots = slots
        self._map = mmap.mmap(-1, slots * _SLOT.size)
        self._view = memoryview(self._map).cast("d")

    def reset(self, slot_index: int) -> None:
        self._view[slot_index * 2] = BOOTING
        self._view[slot_index * 2 + 1] = time.monotonic()

    def beat(self, slot_index: int) -> None:
        self._view[slot_index * 2 + 1] = time.monotonic()

    def mark_ready(self, slot_index: int) -> None:
        self.beat(slot_index)
        self._view[slot_index * 2] = READY

    def mark_retiring(self, slot_index: int) -> None:
        self._view[slot_index * 2] = RETIRING

    def is_ready(self, slot_index: int) -> bool:
        """Has the worker in `slot_index` booted (it may be retiring since)?"""
        return self._view[slot_index * 2] >= READY

    def is_retiring(self, slot_index: int) -> bool:
        return self._view[slot_index * 2] == RETIRING

    def silence(self, slot_index: int) -> float:
        """Seconds since the worker in `slot_index` last beat."""
        return time.monotonic() - self._view[slot_index * 2 + 1]
