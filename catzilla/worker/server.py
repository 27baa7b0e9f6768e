"""One worker process: a uvloop event loop serving HTTP/1.1 on the listening sockets."""
from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import os
import random
import signal
import socket
import sys
import typing
from email.utils import formatdate

import uvloop

from .. import stats_report
from ..background_tasks import BackgroundRunner
from ..config import Config
from ..kinds import HandlerKind
from ..logs import access_logger, printable_address, reopen_log_files
from ..responses import JSONResponse, Response
from ..responses import PlainTextResponse
from ..stats import KIND_CPU_LANE, UNMATCHED_KEY, StatsBoard
from .access_log import AccessLog
from .cpu_lane import LaneClient
from .cpu_time import CpuWatch, interpreter_line
from .memory import return_large_buffers
from .metrics import render_prometheus
from .monitor import LoopMonitor
from .executor import Executor
from .pool import QUEUE_PER_THREAD, ThreadPool, thread_stacks
from .forwarded import TrustedProxies
from .protocol import HttpProtocol
from .tls import server_context
from .websocket import WebSocketConnection

if typing.TYPE_CHECKING:
    from ..app import Catzilla

__all__ = ["Worker", "Supervisor"]

logger = logging.getLogger("catzilla.worker")

SERVER_HEADER = b"server: catzilla\r\n"
TICK = 1.0  # seconds: Date header resolution and the granularity of every connection timeout
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class Supervisor(typing.Protocol):
    """What a worker tells the master that forked it (see catzilla.master)."""

    board: StatsBoard | None  # the shared stats block, when the master made one
    slot_index: int  # this worker's position: its heartbeat and its stats slot
    generation: int

    def ready(self) -> None: ...
    def beat(self) -> None: ...
    def retiring(self) -> None: ...
    def orphaned(self) -> bool: ...


class Worker:
    # Slots: with more attributes than an instance dict shares keys for (30), every read of
    # one (several per request: handled, probes, common_*) went through a materialized dict.
    # `__dict__` stays for what a test harness replaces (the TestClient's _tick).
    __slots__ = (
        "__dict__", "_fault_log", "_last_tick", "_servers", "_stop_requested", "access", "access_log",
        "app", "close_connections", "common_close", "common_keep_alive", "common_keep_alive_10",
        "config", "connections", "cpu_watch", "draining", "executor", "handled", "loop", "loop_lag",
        "max_requests", "monitor", "now", "pool", "pool_hung", "probes", "proxies", "reader",
        "root_path", "runner", "sockets", "started", "stats_slot", "supervisor", "unmatched_index",
        "websocket_handlers", "websockets",
    )

    def __init__(self, app: "Catzilla", config: Config, sockets: list[socket.socket],
                 supervisor: Supervisor | None = None) -> None:
        """`sockets`: the listening sockets, opened by whoever starts the worker (serve, or
        the master before it forks): a worker never opens its own."""
        self.app = app
        self.config = config
        self.sockets = sockets
        self.supervisor = supervisor
        self.connections: set[HttpProtocol] = set()
        self.websockets: set[WebSocketConnection] = set()
        self.websocket_handlers: set[asyncio.Task[None]] = set()  # their handlers' Tasks
        self.proxies = TrustedProxies(config.forwarded_allow_ips) if config.proxy_headers else None
        # Catzilla(root_path=) wins over --root-path (FastAPI's rule).
        self.root_path = getattr(app, "root_path", "") or config.root_path
        if self.root_path and not getattr(app, "root_path", ""):
            # Set before the app prepares (build) and starts: request.url, OpenAPI read it.
            app.root_path = self.root_path
        app.use_settings(config)  # what the app runs itself takes its defaults from (task_*)
        self.draining = False
        # Answer with `connection: close`: while draining, or always with --keep-alive-timeout 0.
        self.close_connections = config.keep_alive_timeout == 0
        self.started = False
        self.now = 0.0
        self.common_keep_alive = self.common_close = self.common_keep_alive_10 = b""
        self.access_log = config.access_log and access_logger.isEnabledFor(logging.INFO)
        self.access: AccessLog | None = None  # made with the loop (build)
        self.probes: dict[str, typing.Callable[[], Response]] = {}
        if config.health_path:
            self.probes[config.health_path] = lambda: JSONResponse({"status": "alive"})
        if config.ready_path:
            self.probes[config.ready_path] = self._readiness
        if config.metrics_path:
            self.probes[config.metrics_path] = self._metrics
        self.stats_slot: typing.Any = None  # this worker's WorkerSlot in the stats block
        self.unmatched_index = -1  # its row for requests no route answered
        self.reader: stats_report.StatsReader | None = None
        self.handled = 0  # requests answered, for --max-requests
        self.loop_lag = 0.0
        self.monitor: LoopMonitor | None = None
        self.max_requests = 0
        if config.max_requests > 0:
            self.max_requests = config.max_requests + random.randint(0, max(0, config.max_requests_jitter))
        self.pool_hung = False  # every pool thread stuck past --timeout: unready, retiring
        self._stop_requested: asyncio.Future[None] | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._last_tick = 0.0

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT, then stop gracefully. Returns the exit status."""
        if self.config.switch_interval > 0:
            sys.setswitchinterval(self.config.switch_interval)
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(self.serve())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            if self.access is not None:  # lines of a last iteration whose callback never ran
                self.access.flush()
            asyncio.set_event_loop(None)
            loop.close()

    async def serve(self) -> int:
        loop = self.loop = asyncio.get_running_loop()
        config = self.config
        return_large_buffers()
        self.build(loop)
        self.runner.install()
        self._stop_requested = loop.create_future()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self.stop)
        loop.add_signal_handler(signal.SIGUSR1, self._reopen_logs)
        # The master's signals, sent to the whole process group or cgroup (systemctl kill,
        # a terminal), are not a worker's business: their default actions would end or stop it.
        for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(signum, signal.SIG_IGN)
        # The master forks with these blocked (see Master.spawn): from here on they are ours.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (*STOP_SIGNALS, signal.SIGUSR1, signal.SIGHUP,
                                                    signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD))
        # A master that finds this loop stuck sends SIGABRT: the stack of every thread goes
        # to the log before the process dies, to show where it was stuck.
        # ...to where the logs go (a USR1 rotation is not followed: dumps are rare and final).
        self._fault_log = open(config.log_file, "a") if config.log_file else sys.stderr
        faulthandler.enable(file=self._fault_log, all_threads=True)
        self._tick()
        await self.app.startup()
        self.access.decide()  # the startup hooks may have set up logging of their own
        # Everything imported and built so far lives as long as the worker: move it out of
        # the collector's sight, so full collections scan only what requests create.
        gc.freeze()
        sockets = self.sockets
        tls = server_context(config)
        for sock in sockets:
            # A TLS handshake is part of sending the head: --header-timeout bounds it.
            server = await loop.create_server(lambda: HttpProtocol(self), sock=sock, backlog=config.backlog,
                                              ssl=tls, ssl_handshake_timeout=config.header_timeout if tls else None)
            self._servers.append(server)
        self.started = True
        if config.loop_block_threshold > 0:
            self.monitor = LoopMonitor(loop, self.app.router.routes, config.loop_block_threshold, self.stats_slot)
            self.monitor.start()
        self._log_start(sockets)
        if self.supervisor is not None:
            self.supervisor.ready()
        await self._stop_requested
        await self._shutdown()
        return 0

    def _reopen_logs(self) -> None:
        """SIGUSR1 (logrotate): the log file opened anew, and the access log's own descriptor
        of it with it."""
        reopen_log_files()
        self.access.decide()

    def build(self, loop: asyncio.AbstractEventLoop) -> None:
        """The pool, the executor, the background runner and the stats slot, as configured
        (also for loadtests/profile_request.py, which drives a worker without sockets)."""
        config = self.config
        self.loop = loop
        max_queue = config.max_queue if config.max_queue is not None else QUEUE_PER_THREAD * config.threads
        self.pool = ThreadPool(loop, config.threads, max_queue=max_queue, queue_timeout=config.queue_timeout)
        self.executor = Executor(loop, self.pool, request_timeout=config.request_timeout,
                                 limit_concurrency=config.limit_concurrency, inline_batch=config.inline_batch)
        self.runner = BackgroundRunner(loop, self.pool)
        self.access = AccessLog(loop, backlog=config.access_log_backlog, drain_timeout=config.access_log_drain)
        self.app.prepare(self.executor.run_in_pool)
        self.executor.prepare(self.app.router.routes)  # after the pipelines are compiled
        lane = getattr(self.supervisor, "cpu_lane", None)  # the CPU lane's address, if it runs
        self._attach_stats(lane is not None)
        if lane is not None:
            self.executor.lane = LaneClient(loop, lane, config.queue_timeout, self.stats_slot)
        self.cpu_watch = CpuWatch(loop, self.app.router.routes, self.stats_slot, lane is not None,
                                  config.auto_cpu_lane)
        self.cpu_watch.wrap()

    def stop(self, reason: str = "signal", retiring: bool = False) -> None:
        """Stop gracefully; `retiring` when the worker decides itself (not told by a signal),
        so that the master replaces it at once and does not take its exit for a crash."""
        if self._stop_requested is not None and not self._stop_requested.done():
            logger.info("worker %d stopping gracefully (%s): finishing in-flight requests",
                        os.getpid(), reason)
            if retiring and self.supervisor is not None:
                self.supervisor.retiring()
            self._stop_requested.set_result(None)

    def _attach_stats(self, lane: bool = False) -> None:
        routes = self.app.router.routes
        supervisor = self.supervisor
        board = supervisor.board if supervisor is not None else None
        if board is None:  # app.listen(): a private block sized for exactly this app
            board = StatsBoard.create(1, len(routes) + 1)  # + the unmatched row
            index, generation = 0, 1
        else:
            index, generation = supervisor.slot_index, supervisor.generation  # type: ignore[union-attr]
        self.reader = stats_report.StatsReader(board)
        stats_report.install(self.reader, self.config.stats)
        if not self.config.stats:
            return
        if index >= board.nslots:
            logger.warning("worker %d has no stats slot (slot %d of %d); its requests are not counted",
                           os.getpid(), index, board.nslots)
            return
        rows = [(r.key, KIND_CPU_LANE if lane and r.cpu_bound and r.pipeline is None
                 else int(r.kind is not HandlerKind.SYNC)) for r in routes] + [(UNMATCHED_KEY, True)]
        try:
            self.stats_slot = board.attach(index, generation, rows)
            self.unmatched_index = len(routes)
        except ValueError as exc:
            logger.warning("stats off for worker %d: %s (raise --stats-routes)", os.getpid(), exc)

    def _metrics(self) -> Response:
        if self.reader is None:
            return PlainTextResponse("", 503)
        return PlainTextResponse(render_prometheus(self.reader.board.snapshot()),
                                 media_type="text/plain; version=0.0.4")

    def _readiness(self) -> Response:
        if self.pool_hung:
            return JSONResponse({"status": "stuck"}, 503)
        if self.draining or not self.started:
            return JSONResponse({"status": "draining" if self.draining else "starting"}, 503)
        return JSONResponse({"status": "ready"})

    def _log_start(self, sockets: list[socket.socket]) -> None:
        routes = self.app.router.routes
        sync = sum(1 for route in routes if route.kind is HandlerKind.SYNC)
        logger.info("worker %d serving on %s", os.getpid(), ", ".join(printable_address(s) for s in sockets))
        logger.info("routes: %d sync, %d async (sync in a pool of %d threads, async on the event loop)",
                    sync, len(routes) - sync, self.config.threads)
        logger.info("%s", interpreter_line())
        marked = [r.key for r in routes if r.cpu_bound]
        if marked:
            where = ("in the CPU lane" if self.executor.lane is not None else
                     "in the thread pool: no CPU lane runs (one process, or --cpu-workers 0)")
            logger.info("cpu_bound routes run %s: %s", where, ", ".join(marked))
            wrapped = [r.key for r in routes if r.cpu_bound and r.pipeline is not None]
            if wrapped and self.executor.lane is not None:
                logger.warning("cpu_bound routes with hooks, middleware or exception handlers run in "
                               "the thread pool (their chain lives in the worker): %s", ", ".join(wrapped))

    def _tick(self) -> None:
        """Once a second: the clock, the Date header, timeouts, loop lag."""
        loop = self.loop
        now = loop.time()
        loop.call_at(now + TICK, self._tick)  # first: nothing below may stop the clock
        if self._last_tick:
            self.loop_lag = max(0.0, now - self._last_tick - TICK)
        self._last_tick = now
        self.now = now
        date = b"date: " + formatdate(usegmt=True).encode("ascii") + b"\r\n"
        self.common_keep_alive = SERVER_HEADER + date
        self.common_keep_alive_10 = SERVER_HEADER + date + b"connection: keep-alive\r\n"
        self.common_close = SERVER_HEADER + date + b"connection: close\r\n"
        connections = list(self.connections)
        for connection in connections:
            connection.check_timeouts(now)
        for websocket in list(self.websockets):
            websocket.check_timeouts(now)
        self.executor.expire(connections, TICK)
        self.executor.report()
        self.cpu_watch.tick()
        self._check_pool()
        if self.reader is not None:
            try:
                self.reader.sample()
            except RuntimeError:  # the block stayed mid-fold for a second: skip a sample
                logger.warning("stats sample skipped: the shared stats block is being rewritten")
        if self.stats_slot is not None:
            pool = self.pool.snapshot()
            self.stats_slot.gauges(pool["size"], pool["busy"], pool["queued"], int(self.loop_lag * 1e6))
        supervisor = self.supervisor
        if supervisor is not None:
            supervisor.beat()
            if supervisor.orphaned():
                self.stop("the master process is gone", retiring=True)

    def _check_pool(self) -> None:
        """Every pool thread stuck on one job for longer than --timeout: a hung worker,
        although its loop, and so its heartbeat, runs on. Say so to the readiness probe, log
        where the threads are stuck, and retire so that the master starts a fresh worker."""
        timeout = self.config.timeout
        if timeout <= 0 or self.pool_hung or self._stop_requested is None or self._stop_requested.done():
            return
        stuck = self.pool.stuck(timeout)
        if not stuck:
            return
        self.pool_hung = True
        logger.error("worker %d: all %d pool threads have been stuck on one job for over %g s "
                     "(--timeout); the worker retires. Where they are:\n%s",
                     os.getpid(), len(stuck), timeout, thread_stacks(stuck))
        self.stop(f"all {len(stuck)} pool threads stuck", retiring=True)

    def retire(self) -> None:
        self.stop(f"recycling after {self.handled} requests (--max-requests)", retiring=True)

    async def _shutdown(self) -> None:
        self.draining = True
        self.close_connections = True
        loop = self.loop
        for server in self._servers:
            server.close()
        for websocket in list(self.websockets):
            websocket.going_away()  # 1001: their clients reconnect, to a worker that serves
        deadline = loop.time() + self.config.graceful_timeout
        # Connections are not closed here: each answers its next request with `connection:
        # close`, and an idle one is closed by the tick when its keep-alive time is up, as
        # always. Closing idle ones at once would race clients that reuse them (and lose
        # their requests); the graceful timeout bounds the wait.
        while loop.time() < deadline and (self.connections or self.websockets):
            await asyncio.sleep(0.05)
        remaining = max(0.0, deadline - loop.time())
        try:
            await asyncio.wait_for(self.runner.wait_idle(), remaining)
        except asyncio.TimeoutError:
            logger.warning("graceful timeout: %d background tasks did not finish", self.runner.pending)
        for connection in [*self.connections, *self.websockets]:
            if connection.transport is not None:
                connection.transport.abort()
        if self.connections:
            logger.warning("graceful timeout: closed %d connections with requests still running",
                           len(self.connections))
        # WebSocket handlers still running after their connection closed (awaiting something
        # else than the socket): cancelled, so that they can clean up before the loop ends.
        for task in list(self.websocket_handlers):
            task.cancel()
        if self.websocket_handlers:
            await asyncio.wait(list(self.websocket_handlers), timeout=max(0.0, deadline - loop.time()) or 0.1)
        await self.app.shutdown()
        if self.monitor is not None:
            self.monitor.stop()
        self.cpu_watch.stop()
        self.pool.shutdown(wait=False)
        stats_report.install(None)
        self.access.flush()  # the last lines, before the line that says the worker stopped
        logger.info("worker %d stopped", os.getpid())
