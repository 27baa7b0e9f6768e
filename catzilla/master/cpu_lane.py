"""The CPU lane, the master's side: the lane processes, forked and supervised like workers.

The master opens the lane's listening socket (a Unix socket in the abstract namespace, named
after its pid and a random token) before the first fork, and passes its address to every
worker. Lane processes (catzilla/worker/lane_process.py) share that socket and accept jobs
from it, so a replaced process loses no queued job: they wait in the kernel's accept queue.

How many: --cpu-workers (default one per CPU), but only when the app has a route for the
lane (cpu_bound=True, or --auto-cpu-lane). With --preload the master sees the routes; without
it the master never imports the app, and the on_server_start process (which does) tells it.
After a reload, new code may differ: the master forks one lane process first, which exits
with EXIT_LANE_NOT_NEEDED when the app has no route for the lane, and no lane runs.

Supervision is the workers': a process that dies is replaced (after a growing pause if it
never booted), one whose heartbeat stops for --timeout gets SIGABRT (stack dump) then
SIGKILL, HUP starts a new generation and stops the old one once the new one is ready, a
stop signal lets each finish its job in hand within --graceful-timeout. Each has a stats
slot (role "lane": its jobs and whether it is busy, not counted again as requests).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import signal
import socket
import sys
import time
import typing

from ..config import cpu_count
from ..worker.lane_process import EXIT_LANE_NOT_NEEDED, lane_needed, serve_lane

__all__ = ["CpuLane", "LANE_BACKLOG_PER_PROCESS"]

logger = logging.getLogger("catzilla.master")

# Jobs that may wait in the accept queue per lane process before a worker's connect is
# refused (503 at once, as the pool's --max-queue): each waits about this many handler
# durations, as in the pool (QUEUE_PER_THREAD), plus the one each process has in hand.
LANE_BACKLOG_PER_PROCESS = 2


@dataclasses.dataclass
class LaneHandle:
    pid: int
    slot_index: int
    generation: int
    spawned: float
    ready: bool = False
    stopping_since: float | None = None
    aborted_since: float | None = None


class CpuLane:
    def __init__(self, master: typing.Any) -> None:
        self.master = master
        config = master.config
        self.config = config
        self.enabled = config.cpu_workers != 0
        self.count = config.cpu_workers or cpu_count()
        # Does the app have a route for the lane? None: not known yet (see the docstring).
        self.needed: bool | None = master.needs_lane
        if master.app is not None:
            self.needed = lane_needed(master.app, config.auto_cpu_lane)
        if self.enabled and self.needed is False:
            logger.info("master %d: no route needs the CPU lane (cpu_bound=True or --auto-cpu-lane); "
                        "running none", os.getpid())
        self.processes: dict[int, LaneHandle] = {}
        self.generation = 1
        self.next_spawn = 0.0
        self.backoff = _arbiter().RESPAWN_BACKOFF_MIN
        self.listener: socket.socket | None = None
        self.address: str | None = None
        if self.enabled:
            self.address = f"\0catzilla-lane-{os.getpid()}-{secrets.token_hex(8)}"
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            self.listener.bind(self.address)
            self.listener.listen(LANE_BACKLOG_PER_PROCESS * self.count)

    def slots(self) -> set[int]:
        return {handle.slot_index for handle in self.processes.values()}

    def target(self) -> int:
        if not self.enabled or self.needed is False:
            return 0
        return 1 if self.needed is None else self.count

    # -- supervision, once a pass of the master's loop --------------------------------------

    def supervise(self, now: float) -> None:
        heartbeats = self.master.heartbeats
        for handle in self.processes.values():
            if not handle.ready and heartbeats.is_ready(handle.slot_index):
                handle.ready = True
                self.needed = True
                self.backoff = _arbiter().RESPAWN_BACKOFF_MIN
        self._check_heartbeats(now)
        self.escalate(now)
        live = [h for h in self.processes.values()
                if h.generation == self.generation and h.stopping_since is None and h.aborted_since is None]
        # Workers first: the lane starts once the first workers serve (jobs sent meanwhile
        # wait in its accept queue, within --queue-timeout).
        if len(live) < self.target() and now >= self.next_spawn and self.master.announced_ready:
            for _ in range(self.target() - len(live)):
                self.spawn()
        ready = sum(1 for h in live if h.ready)
        if ready >= self.target():  # a reload's new generation serves: the old one may go
            for handle in list(self.processes.values()):
                if handle.generation < self.generation:
                    self._stop(handle, f"replaced by generation {self.generation}")

    def _check_heartbeats(self, now: float) -> None:
        timeout = self.config.timeout
        for handle in self.processes.values():
            if handle.aborted_since is not None or not timeout:
                continue
            silence = self.master.heartbeats.silence(handle.slot_index)
            if silence > timeout:
                logger.error("master %d: CPU lane process %d has not beaten for %.1f s (--timeout %g); "
                             "dumping its stack and replacing it", self.master.pid, handle.pid, silence, timeout)
                handle.aborted_since = now
                _kill(handle.pid, signal.SIGABRT)

    def escalate(self, now: float) -> None:
        grace = _arbiter().KILL_GRACE
        for handle in self.processes.values():
            if handle.aborted_since is not None and now - handle.aborted_since > grace:
                _kill(handle.pid, signal.SIGKILL)
            elif handle.stopping_since is not None and \
                    now - handle.stopping_since > self.config.graceful_timeout + grace:
                logger.warning("master %d: CPU lane process %d did not stop within the graceful "
                               "timeout; killing it", self.master.pid, handle.pid)
                _kill(handle.pid, signal.SIGKILL)

    def reap(self, pid: int, status: int) -> bool:
        """A child is gone: True if it was a lane process (then replaced as needed)."""
        handle = self.processes.pop(pid, None)
        if handle is None:
            return False
        master = self.master
        if master.stats is not None:
            master.stats.retire(handle.slot_index)
        code = os.waitstatus_to_exitcode(status)
        if code == EXIT_LANE_NOT_NEEDED:
            if self.needed is not True:
                logger.info("master %d: no route needs the CPU lane (cpu_bound=True or --auto-cpu-lane); "
                            "running none", master.pid)
            self.needed = False
            return True
        expected = handle.stopping_since is not None or master.stopping
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        if expected:
            logger.info("master %d: CPU lane process %d %s", master.pid, pid, how)
            return True
        if handle.ready or master.heartbeats.is_ready(handle.slot_index):  # booted, seen or not
            logger.warning("master %d: CPU lane process %d %s unexpectedly; replacing it", master.pid, pid, how)
        else:
            delay = self.backoff
            self.backoff = min(_arbiter().RESPAWN_BACKOFF_MAX, delay * 2)
            self.next_spawn = max(self.next_spawn, time.monotonic() + delay)
            logger.warning("master %d: CPU lane process %d %s before it was ready; replacing it in %.1f s",
                           master.pid, pid, how, delay)
        return True

    # -- processes ----------------------------------------------------------------------------

    def spawn(self) -> None:
        master = self.master
        slot_index = master.free_slot()
        if slot_index is None:
            logger.error("master %d: no free slot for a CPU lane process", master.pid)
            return
        master.heartbeats.reset(slot_index)
        generation = self.generation
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, _arbiter().HANDLED_SIGNALS)  # see Master.spawn
        pid = os.fork()
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _arbiter().HANDLED_SIGNALS)
        if pid == 0:
            status = 1
            try:
                status = self._main(slot_index, generation)
            except BaseException:
                logger.exception("CPU lane process %d crashed", os.getpid())
            finally:
                _arbiter().exit_child(status)
        self.processes[pid] = LaneHandle(pid, slot_index, generation, time.monotonic())
        logger.info("master %d: started CPU lane process %d (slot %d, generation %d)",
                    master.pid, pid, slot_index, generation)

    def _main(self, slot_index: int, generation: int) -> int:
        master = self.master
        master.child_signals()
        for sock in master.sockets:  # HTTP is the workers' business; a stop must refuse at once
            sock.close()
        app = master.app
        if app is None:
            app = _arbiter().import_app(master.target, f"CPU lane process {os.getpid()}")
            if app is None:
                return _arbiter().EXIT_APP_LOAD_ERROR
        supervision = master.supervision(slot_index, generation)
        return serve_lane(app, self.listener, supervision, self.config)

    def _stop(self, handle: LaneHandle, reason: str) -> None:
        if handle.stopping_since is None:
            logger.info("master %d: stopping CPU lane process %d (%s)", self.master.pid, handle.pid, reason)
            handle.stopping_since = time.monotonic()
            _kill(handle.pid, signal.SIGTERM)

    def reload(self, generation: int) -> None:
        """HUP: a new generation (new code may need a lane where the old did not)."""
        if not self.enabled:
            return
        self.generation = generation
        if self.master.app is None:
            self.needed = None if self.needed is False else self.needed

    def stop(self) -> None:
        for handle in self.processes.values():
            handle.stopping_since = handle.stopping_since or time.monotonic()
            _kill(handle.pid, signal.SIGTERM)

    def kill(self) -> None:
        for handle in self.processes.values():
            _kill(handle.pid, signal.SIGKILL)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()


def _arbiter() -> typing.Any:
    """The master's module, for its supervision constants (it imports this one)."""
    from . import arbiter

    return arbiter


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
