"""One CPU-lane process: runs `cpu_bound` handlers for the workers (see cpu_lane.py).

Forked by the master (catzilla/master/cpu_lane.py) with the lane's listening socket; it
imports the app as a worker does and runs its startup hooks, so a handler sees the same
module globals and lifespan state a worker's would. Then, one job at a time: accept a
connection when idle, check the peer is our own user (the socket is in the abstract
namespace, which any local process can reach), read the job, say it is taken, run the
handler as the pool does, send the response's bytes back.

It beats its heartbeat from a side thread (a handler computing in pure Python still lets
that thread run within a switch interval; one stuck in C code holding the GIL does not, and
the master then dumps its stack and replaces it, as it does a worker's). A job that runs
past the request's timeout is interrupted by SIGALRM (the worker has answered 504 by then),
so the process is free for the next one. SIGTERM: finish the job in hand, then stop.
"""
from __future__ import annotations

import asyncio
import faulthandler
import inspect
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import typing

import orjson

from ..background_tasks import current_request
from ..kinds import HandlerKind
from ..responses import Response, error_response, to_response
from ..stats import ROLE_LANE
from .cpu_lane import ACK, JOB, MAX_META, REPLY, request_from_job
from .exchange import Exchange
from .executor import HANDLER_ERRORS, failure, invoke

__all__ = ["serve_lane", "lane_needed", "EXIT_LANE_NOT_NEEDED"]

logger = logging.getLogger("catzilla.lane")

# The status by which a lane process tells its master that this app has no route for the
# lane (and --auto-cpu-lane is off): the master then runs none until a reload.
EXIT_LANE_NOT_NEEDED = 6
# Seconds between heartbeats, and between looks at the stop flag while idle.
BEAT = 1.0
# Seconds past a job's timeout before the lane stops its handler: the worker's own timeout
# answers the request first (and logs it), as it does for the pool.
TIMEOUT_GRACE = 0.1
# Seconds a worker has to send a whole job once connected: it writes the frame right after
# connecting, so only a stalled or hostile peer takes longer.
READ_TIMEOUT = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class JobTimeout(BaseException):
    """Raised in a handler by SIGALRM at its request's timeout (BaseException: a handler's
    `except Exception` must not swallow it)."""


def lane_needed(app: typing.Any, auto: bool) -> bool:
    return auto or any(route.cpu_bound for route in app.router.routes)


def serve_lane(app: typing.Any, listener: socket.socket, supervisor: typing.Any, config: typing.Any) -> int:
    if not lane_needed(app, config.auto_cpu_lane):
        return EXIT_LANE_NOT_NEEDED
    return Lane(app, listener, supervisor, config).run()


class Lane:
    def __init__(self, app: typing.Any, listener: socket.socket, supervisor: typing.Any, config: typing.Any) -> None:
        self.app = app
        self.listener = listener
        self.supervisor = supervisor
        self.config = config
        self.routes: dict[str, typing.Any] = {}
        self.stopping = False
        self.slot: typing.Any = None
        self.uid = os.geteuid()

    def run(self) -> int:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._stop)
        for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, _alarm)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (*STOP_SIGNALS, signal.SIGHUP, signal.SIGTTIN,
                                                    signal.SIGTTOU, signal.SIGUSR1, signal.SIGCHLD))
        # The master's SIGABRT (a heartbeat that stopped): every thread's stack, where the logs go.
        self._fault_log = open(self.config.log_file, "a") if self.config.log_file else sys.stderr
        faulthandler.enable(file=self._fault_log, all_threads=True)
        if self.config.switch_interval > 0:
            sys.setswitchinterval(self.config.switch_interval)
        if self.config.cpu_nice:
            os.nice(self.config.cpu_nice)
        self.listener.setblocking(False)
        self.loop = asyncio.new_event_loop()  # for startup/shutdown hooks and awaitables
        asyncio.set_event_loop(self.loop)
        self.app.prepare(self._pool_run)
        # What a worker's direct path runs for each route: the route itself, or for one with
        # a plan (dependencies, a response model) the plan's own route (pipeline.DirectPlan).
        # Routes with a chain around them never come here (the worker runs them).
        for route in self.app.router.routes:
            target = getattr(route.pipeline, "direct", None) or route
            if route.kind is HandlerKind.SYNC:
                self.routes[route.key] = target
        try:
            self.loop.run_until_complete(self.app.startup())
            self._attach_stats()
            beating = threading.Event()
            threading.Thread(target=self._beat, args=(beating,), name="catzilla-lane-beat", daemon=True).start()
            self.supervisor.ready()
            logger.info("CPU lane process %d ready: %d route(s) may run here", os.getpid(),
                        sum(1 for r in self.routes.values() if r.cpu_bound) or len(self.routes))
            while not self.stopping:
                readable, _, _ = select.select([self.listener, wake_r], [], [], BEAT)
                if wake_r in readable:
                    _drain(wake_r)
                if self.listener in readable and not self.stopping:
                    try:
                        conn, _ = self.listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue  # another lane process took it
                    with conn:
                        self._serve(conn)
                if self.supervisor.orphaned():
                    logger.warning("CPU lane process %d: the master is gone; stopping", os.getpid())
                    break
            beating.set()
            self.loop.run_until_complete(self.app.shutdown())
        finally:
            self.loop.close()
        logger.info("CPU lane process %d stopped", os.getpid())
        return 0

    def _pool_run(self, fn: typing.Callable[..., typing.Any], *args: typing.Any) -> asyncio.Future[typing.Any]:
        """A plan's `pool_run` here: the job runs at once (this process has no pool)."""
        future = self.loop.create_future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def _stop(self, signum: int, frame: typing.Any) -> None:
        self.stopping = True  # the job in hand (if any) finishes first

    def _beat(self, stopped: threading.Event) -> None:
        while not stopped.wait(BEAT):
            self.supervisor.beat()

    def _attach_stats(self) -> None:
        board = self.supervisor.board
        if board is None or not self.config.stats or self.supervisor.slot_index >= board.nslots:
            return
        self.slot = board.block.attach(self.supervisor.slot_index, os.getpid(), self.supervisor.generation,
                                       [], ROLE_LANE)

    # -- one job --------------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        conn.setblocking(True)
        conn.settimeout(READ_TIMEOUT)
        try:
            _, uid, _ = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
            if uid != self.uid and uid != 0:
                logger.warning("CPU lane: refused a connection from uid %d (not this server's user)", uid)
                return
            meta_length, body_length = JOB.unpack(_read(conn, JOB.size))
            if meta_length > MAX_META or body_length > self.config.max_body_size:
                logger.warning("CPU lane: refused a job frame of %d + %d bytes", meta_length, body_length)
                return
            meta = orjson.loads(_read(conn, meta_length))
            body = _read(conn, body_length)
            conn.sendall(ACK)  # taken: the worker stops counting --queue-timeout
        except (OSError, ValueError, EOFError) as exc:  # the worker gave up (or sent garbage)
            logger.debug("CPU lane: job not read: %s", exc)
            return
        conn.settimeout(None)
        started = self.slot.begin(-1) if self.slot is not None else 0.0
        request = None
        try:
            request, status, data, cpu, wall = self._run(meta, body)
        except JobTimeout:
            logger.warning("CPU lane: the handler for %s ran past its timeout of %g s; stopped "
                           "(its request is answered 504)", meta.get("key"), meta.get("timeout"))
            status, cpu, wall = 504, 0.0, 0.0
            data = error_response(504, "Gateway Timeout").encode(meta["common"].encode("latin-1"), meta["head"])
        if self.slot is not None:
            self.slot.end(-1, started, status, 0, 0)
        if data is not None:
            try:
                conn.sendall(REPLY.pack(len(data), status, int(cpu * 1e6), int(wall * 1e6)) + data)
            except OSError:
                pass  # the worker stopped waiting (its timeout): nobody to tell
        if request is not None and request.background:
            self._background(request.background)

    def _run(self, meta: dict[str, typing.Any], body: bytes) -> tuple[typing.Any, int, bytes, float, float]:
        """The pool's _run_sync, here: bind, call, encode; any exception answered as there."""
        common, head_only = meta["common"].encode("latin-1"), meta["head"]
        route = self.routes.get(meta["key"])
        if route is None:  # a worker of another generation (a reload in progress)
            logger.warning("CPU lane: no def route %s in this generation of the app", meta["key"])
            response = Response(None, 503, {"retry-after": "1"})
            data = response.encode(common, head_only)
            return None, response.status_code, data, 0.0, 0.0  # type: ignore[return-value]
        request = request_from_job(meta, body)
        timeout = float(meta["timeout"] or 0)
        token = current_request.set(request)
        cpu, wall = time.thread_time(), time.perf_counter()
        if timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, timeout + TIMEOUT_GRACE)
        try:
            try:
                kwargs = None if route.binding.trivial else route.binding.bind(request)
                result = invoke(route, request, kwargs)
                if inspect.isawaitable(result):  # a def that returned a coroutine: awaited here
                    result = self.loop.run_until_complete(result)
                response = result if isinstance(result, Response) else to_response(result)
                if response.streaming:
                    raise RuntimeError("a streaming response cannot cross the CPU lane's process "
                                       "boundary; return the whole body, or drop cpu_bound=True")
                data = response.encode(common, head_only)
            except HANDLER_ERRORS as exc:
                # Answered as the worker answers it (no connection here: nothing else is read).
                response, data = failure(Exchange(None, request, route, common, head_only, True, -1, 0.0), exc)
        finally:
            if timeout > 0:
                signal.setitimer(signal.ITIMER_REAL, 0)
            current_request.reset(token)
        return request, response.status_code, data, time.thread_time() - cpu, time.perf_counter() - wall  # type: ignore[return-value]

    def _background(self, tasks: list[typing.Any]) -> None:
        """Background tasks the handler scheduled: here, after its response is sent."""
        for fn, args, kwargs in tasks:
            try:
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    self.loop.run_until_complete(result)
            except Exception:
                logger.exception("background task %r failed", fn)


def _alarm(signum: int, frame: typing.Any) -> None:
    raise JobTimeout()


def _read(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the worker closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
