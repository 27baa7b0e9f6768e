"""The master process: binds, pre-forks, supervises, reloads.

Signals follow gunicorn's meanings. Handlers only record the signal (and wake the main loop
through a pipe); the main loop acts on it, so no supervision logic runs in signal context.

    TERM, INT, QUIT  graceful stop        HUP   zero-downtime reload
    TTIN / TTOU      one worker more/less USR1  reopen log files
"""
from __future__ import annotations

import dataclasses
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import typing

from ..config import Config, cpu_count
from ..loading import AppLoadError, load_app
from ..logs import printable_address, reopen_log_files
from ..stats import StatsBoard, board_path, remove_stale_boards
from ..worker.lane_process import lane_needed
from .cpu_lane import CpuLane
from .heartbeat import MAX_SLOTS, Heartbeats
from .listeners import open_listeners
from .systemd import Notifier

__all__ = ["Master", "EXIT_APP_LOAD_ERROR", "EXIT_WORKER_BOOT_ERROR", "run_server_start"]

logger = logging.getLogger("catzilla.master")

# gunicorn's exit statuses, which operators and init systems already know.
EXIT_WORKER_BOOT_ERROR = 3
EXIT_APP_LOAD_ERROR = 4
# A worker's status when its main raised (spawn): a failing startup hook, a crash while booting.
EXIT_WORKER_CRASHED = 1
# Statuses by which a worker reports that the app itself cannot start: retrying would only
# fail again, so before any worker serves they stop the master. Any other death before boot
# (a signal from the OOM killer or an operator, an exit nobody asked for) is replaced.
APP_FAILURES = frozenset({EXIT_APP_LOAD_ERROR, EXIT_WORKER_CRASHED})

# How the one-shot server-start process (Master._server_start) says its on_server_start
# hooks failed, apart from EXIT_APP_LOAD_ERROR (the app did not import): never a server's status.
_SERVER_START_FAILED = 5

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                   signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGCHLD)
# After SIGABRT (stack dump) or the graceful timeout, how long before SIGKILL.
KILL_GRACE = 3.0
# A worker that died before it booted is replaced after a pause that starts here (a single
# kill costs a tenth of a second) and doubles with each further failure...
RESPAWN_BACKOFF_MIN = 0.1
# ...up to this: a machine that keeps killing workers is not flooded with forks, and one that
# stopped is serving again within seconds.
RESPAWN_BACKOFF_MAX = 5.0
POLL = 0.25  # seconds between supervision passes when nothing wakes the master
# With --timeout 0 (no heartbeat timeout), how long a reload waits for its new workers.
RELOAD_WAIT = 60.0


def import_app(target: str, who: str = "") -> typing.Any | None:
    """`target`'s application, or None once the reason is logged, prefixed with `who` (the
    process that tried); its exit status is then EXIT_APP_LOAD_ERROR."""
    prefix = f"{who}: " if who else ""
    try:
        return load_app(target)
    except AppLoadError as exc:
        logger.error("%s%s", prefix, exc)
    except Exception:
        logger.exception("%scould not load the application %r", prefix, target)
    return None


def run_server_start(app: typing.Any) -> int:
    """Run `app`'s on_server_start hooks in this process: 0, or EXIT_APP_LOAD_ERROR (logged)."""
    server_start = getattr(app, "server_start", None)
    if server_start is None:
        return 0
    try:
        server_start()
    except Exception:
        logger.exception("an on_server_start hook failed; the server does not start")
        return EXIT_APP_LOAD_ERROR
    return 0


@dataclasses.dataclass
class WorkerHandle:
    pid: int
    slot_index: int  # its position: its heartbeat and its stats slot
    generation: int
    spawned: float
    ready: bool = False
    stopping_since: float | None = None  # SIGTERM sent (graceful stop)
    aborted_since: float | None = None  # SIGABRT sent (heartbeat timeout)


class _Supervision:
    """What a worker gets from its master (see catzilla.worker.server.Supervisor)."""

    def __init__(self, heartbeats: Heartbeats, board: StatsBoard | None, slot_index: int,
                 generation: int, master_pid: int, cpu_lane: str | None = None) -> None:
        self.heartbeats, self.board = heartbeats, board
        self.slot_index, self.generation, self.master_pid = slot_index, generation, master_pid
        self.cpu_lane = cpu_lane  # the CPU lane's address, when the master runs one

    def ready(self) -> None:
        self.heartbeats.mark_ready(self.slot_index)

    def beat(self) -> None:
        self.heartbeats.beat(self.slot_index)

    def retiring(self) -> None:
        self.heartbeats.mark_retiring(self.slot_index)

    def orphaned(self) -> bool:
        return os.getppid() != self.master_pid


class Master:
    def __init__(self, target: str, config: Config) -> None:
        self.target = target
        self.config = config
        self.app: typing.Any = None  # set when --preload imported it here
        self.workers: dict[int, WorkerHandle] = {}
        self.target_count = config.workers
        self.generation = 1
        self.reload_generation: int | None = None
        self.reload_deadline = 0.0
        self.stopping = False
        self.stop_deadline = 0.0
        self.exit_status = 0
        self.announced_ready = False
        self.next_spawn = 0.0
        self.respawn_backoff = RESPAWN_BACKOFF_MIN
        self.signals: list[int] = []
        self.notifier = Notifier()
        self.last_watchdog = 0.0
        self.needs_lane: bool | None = None  # does the app have routes for the CPU lane?

    # -- the main loop ---------------------------------------------------------------------

    def run(self) -> int:
        self.pid = os.getpid()
        try:
            self.sockets = open_listeners(self.config)
        except (OSError, ValueError) as exc:
            logger.error("cannot listen: %s", exc)
            return EXIT_WORKER_BOOT_ERROR
        if self.config.preload and self.app is None:
            self.app = import_app(self.target)
            if self.app is None:
                return EXIT_APP_LOAD_ERROR
            if threading.active_count() > 1:
                logger.warning("preloading %s left %d threads running in the master; threads do "
                               "not survive fork, so workers will not have them",
                               self.target, threading.active_count() - 1)
        status = self._server_start()
        if status:
            return status
        self.heartbeats = Heartbeats()
        self.stats = self._create_stats()
        self.lane = CpuLane(self)
        self._write_pid()
        self._install_signals()
        logger.info("master %d: listening on %s, %d worker(s)", self.pid,
                    ", ".join(printable_address(s) for s in self.sockets), self.target_count)
        try:
            while True:
                self._handle_signals()
                self._reap()
                if self.stopping:
                    if not self.workers and not self.lane.processes:
                        break
                    self._escalate(time.monotonic())
                    self.lane.escalate(time.monotonic())
                else:
                    self._supervise()
                    self.lane.supervise(time.monotonic())
                self._wait()
        finally:
            self._cleanup()
        logger.info("master %d: stopped", self.pid)
        return self.exit_status

    def _server_start(self) -> int:
        """The app's on_server_start hooks, once per server start, before the first fork
        (a HUP reload, a replaced worker, TTIN never run them again).

        With --preload (or app.listen()) the app is here: they run in the master. Otherwise
        the master must not import the app (workers import it after the fork, and a reload
        imports new code), and a worker cannot run them (a migration may outlast --timeout,
        whose heartbeat clock runs from the fork; the other workers would have to wait on
        it): a one-shot child imports the app, runs its hooks and exits, and the workers are
        forked once it has succeeded. That costs one more import of the app per start
        (module-level code runs once more; what the hooks leave in globals stays in that
        child), and an app that does not import is reported from there. That child also
        tells whether the app has routes for the CPU lane (one byte on a pipe)."""
        if self.app is not None:
            return run_server_start(self.app)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        needs_r, needs_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            status = EXIT_APP_LOAD_ERROR
            try:
                app = import_app(self.target)
                if app is not None:
                    status = _SERVER_START_FAILED if run_server_start(app) else 0
                    os.write(needs_w, b"1" if lane_needed(app, self.config.auto_cpu_lane) else b"0")
            except BaseException:
                logger.exception("the on_server_start process crashed")
            finally:
                exit_child(status)
        os.close(needs_w)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(needs_r, "rb") as answer:
            self.needs_lane = {b"1": True, b"0": False}.get(answer.read(1))  # None: not told
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            return 0
        if code == EXIT_APP_LOAD_ERROR:
            logger.error("master %d: the application %r could not be loaded; stopping", self.pid, self.target)
        elif code == _SERVER_START_FAILED:
            logger.error("master %d: an on_server_start hook of %r failed; stopping", self.pid, self.target)
        else:
            logger.error("master %d: the on_server_start process of %r ended with status %d; stopping",
                         self.pid, self.target, code)
        return EXIT_APP_LOAD_ERROR

    def _create_stats(self) -> StatsBoard | None:
        """The shared stats block, mapped before the first fork so every worker shares it."""
        removed = remove_stale_boards()  # left by masters killed with -9: memory in /dev/shm
        if removed:
            logger.info("master %d: removed %d stats file(s) of dead masters", self.pid, removed)
        if not self.config.stats:
            return None
        # Room for two generations side by side during a reload, and a few respawns; and the
        # same for the CPU lane's processes.
        nslots = max(16, 2 * self.target_count + 8) + 2 * (self.config.cpu_workers or cpu_count())
        nroutes = 1 + (len(self.app.router.routes) if self.app is not None else self.config.stats_routes)  # + unmatched
        try:
            return StatsBoard.create(nslots, nroutes, board_path(self.pid))
        except OSError as exc:
            logger.warning("master %d: no shared stats block (%s); statistics are per worker",
                           self.pid, exc)
            return None

    def _wait(self) -> None:
        timeout = POLL
        if self.notifier.watchdog_interval:
            timeout = min(timeout, self.notifier.watchdog_interval)
        try:
            readable, _, _ = select.select([self.wake_r], [], [], timeout)
        except InterruptedError:
            return
        if readable:
            try:
                while os.read(self.wake_r, 4096):
                    pass
            except BlockingIOError:
                pass

    def _supervise(self) -> None:
        now = time.monotonic()
        self._check_heartbeats(now)
        self._notice_retiring(now)
        self._escalate(now)
        self._progress_reload(now)
        self._keep_count(now)
        if not self.announced_ready and self._ready_count(self.generation) >= self.target_count:
            self.announced_ready = True
            logger.info("master %d: %d worker(s) ready", self.pid, self.target_count)
            self.notifier.ready(f"{self.target_count} workers")
        if self.notifier.watchdog_interval and now - self.last_watchdog >= self.notifier.watchdog_interval:
            self.last_watchdog = now
            self.notifier.watchdog()

    # -- signals -------------------------------------------------------------------------

    def _install_signals(self) -> None:
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._record_signal)

    def _record_signal(self, signum: int, frame: typing.Any) -> None:
        if signum != signal.SIGCHLD:
            self.signals.append(signum)

    def _handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            name = signal.Signals(signum).name
            if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                self.stop(f"{name} received")
            elif self.stopping:
                continue
            elif signum == signal.SIGHUP:
                self.reload()
            elif signum == signal.SIGTTIN:
                if self.target_count < MAX_SLOTS:
                    self.target_count += 1
                logger.info("master %d: SIGTTIN: %d worker(s)", self.pid, self.target_count)
            elif signum == signal.SIGTTOU:
                self.target_count = max(1, self.target_count - 1)
                logger.info("master %d: SIGTTOU: %d worker(s)", self.pid, self.target_count)
            elif signum == signal.SIGUSR1:
                reopen_log_files()
                self._signal_all(signal.SIGUSR1)

    # -- workers -------------------------------------------------------------------------

    def free_slot(self) -> int | None:
        """The lowest heartbeat and stats slot no worker or CPU lane process holds."""
        used = {w.slot_index for w in self.workers.values()} | self.lane.slots()
        return next((s for s in range(MAX_SLOTS) if s not in used), None)

    def supervision(self, slot_index: int, generation: int) -> _Supervision:
        """What a child forked into `slot_index` gets from its master."""
        return _Supervision(self.heartbeats, self.stats, slot_index, generation, self.pid, self.lane.address)

    def child_signals(self) -> None:
        """In a forked child: the master's signal handling undone, its wake-up pipe closed."""
        signal.set_wakeup_fd(-1)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        os.close(self.wake_r)
        os.close(self.wake_w)
        self.notifier.close()

    def spawn(self, generation: int) -> WorkerHandle | None:
        slot_index = self.free_slot()
        if slot_index is None:
            logger.error("master %d: no free worker slot", self.pid)
            return None
        self.heartbeats.reset(slot_index)
        self.spawning_generation = generation
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        # A signal that reaches the new worker before it has its own handlers would run the
        # master's (inherited) and be lost: keep them pending until the worker's event loop
        # handles them (Worker.serve unblocks).
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        pid = os.fork()
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        if pid == 0:  # the worker
            status = 1
            try:
                status = self._worker_main(slot_index)
            except BaseException:
                logger.exception("worker %d crashed", os.getpid())
            finally:
                exit_child(status)
        handle = WorkerHandle(pid, slot_index, generation, time.monotonic())
        self.workers[pid] = handle
        logger.info("master %d: started worker %d (slot %d, generation %d)",
                    self.pid, pid, slot_index, generation)
        return handle

    def _worker_main(self, slot_index: int) -> int:
        from ..worker.server import Worker

        self.child_signals()
        app = self.app
        if app is None:
            app = import_app(self.target, f"worker {os.getpid()}")
            if app is None:
                return EXIT_APP_LOAD_ERROR
        handle = self.workers.get(os.getpid())
        generation = handle.generation if handle is not None else self.spawning_generation
        supervision = self.supervision(slot_index, generation)
        return Worker(app, self.config, self.sockets, supervision).run()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            handle = self.workers.pop(pid, None)
            if handle is None:
                self.lane.reap(pid, status)
                continue
            if self.stats is not None:
                self.stats.retire(handle.slot_index)  # its counts live on in the totals
            self._log_death(handle, status)
            booted = handle.ready or self.heartbeats.is_ready(handle.slot_index)
            if not booted and handle.stopping_since is None and not self.stopping:
                self._boot_failed(handle, os.waitstatus_to_exitcode(status))

    def _log_death(self, handle: WorkerHandle, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with status {code}"
        expected = handle.stopping_since is not None or self.stopping or self.heartbeats.is_retiring(handle.slot_index)
        level = logging.INFO if expected and code == 0 else logging.WARNING
        logger.log(level, "master %d: worker %d %s%s", self.pid, handle.pid, how,
                   "" if expected else " unexpectedly; replacing it")

    def _boot_failed(self, handle: WorkerHandle, code: int) -> None:
        if code not in APP_FAILURES:
            self._respawn_later(handle, "died before it was ready")
        elif self.reload_generation is not None and handle.generation == self.reload_generation:
            logger.error("master %d: reload failed: a new worker did not boot (status %d); "
                         "keeping the running workers", self.pid, code)
            self._abort_reload()
        elif self._ready_count(self.generation) == 0:
            what = "could not be loaded" if code == EXIT_APP_LOAD_ERROR else "did not boot"
            logger.error("master %d: the application %r %s (worker status %d); stopping",
                         self.pid, self.target, what, code)
            self.exit_status = EXIT_APP_LOAD_ERROR if code == EXIT_APP_LOAD_ERROR else EXIT_WORKER_BOOT_ERROR
            self.stop("a worker failed to boot")
        else:
            self._respawn_later(handle, "failed to boot")

    def _respawn_later(self, handle: WorkerHandle, what: str) -> None:
        """Replace a worker that never booted after a growing pause (reset once one boots)."""
        delay = self.respawn_backoff
        self.respawn_backoff = min(RESPAWN_BACKOFF_MAX, delay * 2)
        self.next_spawn = max(self.next_spawn, time.monotonic() + delay)
        logger.warning("master %d: worker %d (generation %d) %s; replacing it in %.1f s",
                       self.pid, handle.pid, handle.generation, what, delay)

    def _ready_count(self, generation: int) -> int:
        for handle in self.workers.values():
            if not handle.ready and self.heartbeats.is_ready(handle.slot_index):
                handle.ready = True
                self.respawn_backoff = RESPAWN_BACKOFF_MIN  # booting works (again)
        return sum(1 for w in self.workers.values()
                   if w.generation == generation and w.ready and w.stopping_since is None)

    def _notice_retiring(self, now: float) -> None:
        """A worker stopping on its own (--max-requests) is replaced at once, while it
        finishes its last requests, not after it is gone."""
        for handle in self.workers.values():
            if handle.stopping_since is None and self.heartbeats.is_retiring(handle.slot_index):
                logger.info("master %d: worker %d is retiring; starting its replacement", self.pid, handle.pid)
                handle.ready = True
                handle.stopping_since = now

    def _live(self, generation: int) -> list[WorkerHandle]:
        return [w for w in self.workers.values()
                if w.generation == generation and w.stopping_since is None and w.aborted_since is None]

    def _keep_count(self, now: float) -> None:
        current = self._live(self.generation)
        if len(current) < self.target_count and now >= self.next_spawn:
            for _ in range(self.target_count - len(current)):
                self.spawn(self.generation)
        elif len(current) > self.target_count:
            for handle in sorted(current, key=lambda w: w.spawned)[self.target_count:]:
                self._stop_worker(handle, "fewer workers requested")

    def _stop_worker(self, handle: WorkerHandle, reason: str) -> None:
        if handle.stopping_since is None:
            logger.info("master %d: stopping worker %d (%s)", self.pid, handle.pid, reason)
            handle.stopping_since = time.monotonic()
            self._kill(handle.pid, signal.SIGTERM)

    def _check_heartbeats(self, now: float) -> None:
        for handle in list(self.workers.values()):
            if handle.aborted_since is not None:
                continue
            silence = self.heartbeats.silence(handle.slot_index)
            if self.config.timeout and silence > self.config.timeout:  # 0: no timeout
                logger.error("master %d: worker %d's event loop has not run for %.1f s "
                             "(--timeout %g); dumping its stack and replacing it",
                             self.pid, handle.pid, silence, self.config.timeout)
                handle.aborted_since = now
                self._kill(handle.pid, signal.SIGABRT)  # faulthandler prints every thread

    def _escalate(self, now: float) -> None:
        for handle in list(self.workers.values()):
            if handle.aborted_since is not None and now - handle.aborted_since > KILL_GRACE:
                self._kill(handle.pid, signal.SIGKILL)
            elif handle.stopping_since is not None and \
                    now - handle.stopping_since > self.config.graceful_timeout + KILL_GRACE:
                logger.warning("master %d: worker %d did not stop within the graceful timeout; killing it",
                               self.pid, handle.pid)
                self._kill(handle.pid, signal.SIGKILL)
        if self.stopping and now > self.stop_deadline:
            for handle in self.workers.values():
                self._kill(handle.pid, signal.SIGKILL)

    def _kill(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def _signal_all(self, signum: int) -> None:
        for pid in list(self.workers):
            self._kill(pid, signum)

    # -- reload and stop -------------------------------------------------------------------

    def reload(self) -> None:
        if self.reload_generation is not None:
            logger.info("master %d: SIGHUP: a reload is already in progress", self.pid)
            return
        if self.config.preload:
            logger.warning("master %d: SIGHUP with --preload restarts workers with the app "
                           "imported at start; restart the master to load new code", self.pid)
        self.notifier.reloading()
        self.reload_generation = self.generation + 1
        self.reload_deadline = time.monotonic() + (self.config.timeout or RELOAD_WAIT)
        logger.info("master %d: SIGHUP: starting generation %d", self.pid, self.reload_generation)
        for _ in range(self.target_count):
            self.spawn(self.reload_generation)
        self.lane.reload(self.reload_generation)

    def _progress_reload(self, now: float) -> None:
        generation = self.reload_generation
        if generation is None:
            return
        # A new worker killed before it was ready is replaced within the reload.
        missing = self.target_count - len(self._live(generation))
        if missing > 0 and now >= self.next_spawn:
            for _ in range(missing):
                self.spawn(generation)
        if self._ready_count(generation) >= self.target_count:
            old = [w for w in self.workers.values() if w.generation < generation]
            self.generation = generation
            self.reload_generation = None
            for handle in old:
                self._stop_worker(handle, f"replaced by generation {generation}")
            logger.info("master %d: reload complete: generation %d serving", self.pid, generation)
            self.notifier.ready(f"{self.target_count} workers, generation {generation}")
        elif now > self.reload_deadline:
            logger.error("master %d: reload failed: generation %d was not ready within %g s; "
                         "keeping the running workers", self.pid, generation, self.config.timeout)
            self._abort_reload()

    def _abort_reload(self) -> None:
        generation = self.reload_generation
        self.reload_generation = None
        for handle in list(self.workers.values()):
            if handle.generation == generation:
                self._stop_worker(handle, "reload aborted")
        self.notifier.ready(f"{self.target_count} workers (reload failed)")

    def stop(self, reason: str) -> None:
        if self.stopping:
            # A second stop signal (Ctrl-C twice): don't wait for the graceful timeout.
            logger.warning("master %d: %s again: stopping now", self.pid, reason.split()[0])
            for handle in self.workers.values():
                self._kill(handle.pid, signal.SIGKILL)
            self.lane.kill()
            return
        logger.info("master %d: %s: stopping gracefully", self.pid, reason)
        self.notifier.stopping()
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.config.graceful_timeout + KILL_GRACE
        for handle in self.workers.values():
            handle.stopping_since = handle.stopping_since or time.monotonic()
            self._kill(handle.pid, signal.SIGTERM)
        self.lane.stop()
        # Once the workers close theirs too, the sockets are gone: new connections are
        # refused at once (a load balancer moves on) instead of queueing where nobody will
        # accept them. systemd keeps its own copy of an activated socket.
        for sock in self.sockets:
            sock.close()

    # -- files -----------------------------------------------------------------------------

    def _write_pid(self) -> None:
        if self.config.pid:
            with open(self.config.pid, "w") as f:
                f.write(f"{self.pid}\n")

    def _cleanup(self) -> None:
        if self.config.pid:
            try:
                with open(self.config.pid) as f:
                    if f.read().strip() == str(self.pid):
                        os.unlink(self.config.pid)
            except OSError:
                pass
        for sock in self.sockets:
            if sock.family == socket.AF_UNIX and self.config.uds:
                try:
                    os.unlink(self.config.uds)
                except OSError:
                    pass
            sock.close()
        if self.stats is not None:
            self.stats.unlink()
        self.lane.close()
        self.notifier.close()


def exit_child(status: int) -> typing.NoReturn:
    """End a forked child (a worker, the server-start process) without running the
    master's exit handlers, its logs and output flushed first."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(status)
