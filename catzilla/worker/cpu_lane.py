"""The CPU lane, a worker's side: `cpu_bound=True` handlers run in other processes.

Under the GIL a `def` handler that computes in the thread pool slows the worker's event loop:
after every wake-up the loop waits for the GIL, up to the switch interval each time. The
master forks a few *lane processes* beside the workers (catzilla/master/cpu_lane.py); they
import the app as workers do, so a handler is found by its route, never pickled. A request
for a `cpu_bound` route is bound here first (a 422 is answered at once, as in the pool), then
sent as data, not objects: the route's key, the request line, headers, body, raw path
parameters, the header lines of the answer and the request's timeout. The lane process
binds the same data again (the same code, so the same arguments), runs the handler, encodes
the response exactly as the pool's thread would (executor.encode/failure) and sends the bytes
back. The loop only waits on a socket meanwhile: it never holds the lane's GIL, nor the lane
its.

One connection per job, to the lane's listening Unix socket: an idle lane process accepts
it, so the kernel's accept queue is the lane's queue and the least busy process takes the
next job. Admission mirrors the pool's: a full queue refuses at once (the backlog is full:
503), a job not taken within --queue-timeout is answered 503, and one that runs past its
timeout is answered 504 by the executor as any request is (its Task is cancelled, the
connection closed, and the lane process stops the handler at the same deadline). A lane
process that dies mid-job closes the connection: that client gets a 502 and the master
starts a replacement.

    worker                                lane process
      connect, send JOB frame  ------->     accept, read the frame
                               <-------     ACK (taken: no more queue-timeout)
                               <-------     REPLY header + the response's bytes
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
import typing

import orjson

from ..datastructures import Address
from ..request import Request
from ..responses import Response, error_response
from ..routing import Route
from .exchange import Exchange
from .executor import Executor, overloaded

__all__ = ["LaneClient", "JOB", "REPLY", "ACK", "job_frame", "request_from_job", "MAX_META"]

logger = logging.getLogger("catzilla.worker")

# The frames: JOB = (meta length, body length), then the meta (JSON) and the body; REPLY =
# (data length, status, CPU µs, wall µs), then the encoded response.
JOB = struct.Struct("!II")
REPLY = struct.Struct("!IHQQ")
ACK = b"+"
# The meta of one job is the request head and a few numbers: far below this, which bounds
# what a lane process allocates for a frame before it has looked at it.
MAX_META = 1 << 20


class LaneFailure(Exception):
    """The lane process handling a job went away before answering it."""


class Refused(Exception):
    """The lane could not take a job in time (args: the --max-queue/--queue-timeout cause)."""


def job_frame(route: Route, request: Request, common: bytes, head_only: bool, timeout: float) -> bytes:
    items = request._header_items
    if type(items) is not list:
        items = request.headers.multi_items()
    meta = orjson.dumps({
        "key": route.key, "method": request.method, "path": request.path, "query": request.query_string,
        "headers": items, "client": list(request.client) if request.client else None, "version": request.http_version,
        "params": request.path_params, "common": common.decode("latin-1"), "head": head_only,
        "timeout": timeout,
    })
    return JOB.pack(len(meta), len(request.body)) + meta + request.body


def request_from_job(meta: dict[str, typing.Any], body: bytes) -> Request:
    """The handler's `Request` in the lane process: the same data the worker received."""
    client = meta["client"]
    request = Request(meta["method"], meta["path"], meta["query"], [(k, v) for k, v in meta["headers"]],
                      body, Address(*client) if client else None, meta["version"])
    request.path_params = meta["params"] or {}
    return request


class LaneClient:
    """Sends a worker's `cpu_bound` requests to the lane (its listening socket's address)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, address: str, queue_timeout: float,
                 stats_slot: typing.Any) -> None:
        self.loop = loop
        self.address = address
        self.queue_timeout = queue_timeout  # 0: no limit
        self.stats_slot = stats_slot
        self.in_flight = 0

    def start(self, executor: Executor, exchange: Exchange) -> None:
        """Executor.start's branch for a `cpu_bound` route (the worker's binding only proved
        the request valid; the lane binds the same data again)."""
        exchange.owed = True
        exchange.task = self.loop.create_task(self._run(executor, exchange))
        executor.tasks += 1

    async def _run(self, executor: Executor, exchange: Exchange) -> None:
        route, common, head_only = exchange.route, exchange.common, exchange.head_only
        self.in_flight += 1
        try:
            response, data = await self._call(route, job_frame(route, exchange.request, common, head_only,
                                                               executor.timeout_of(route)))
        except Refused as refused:
            executor.refused[refused.args[0]] += 1
            response = overloaded()
            data = response.encode(common, head_only)
        except (LaneFailure, OSError) as exc:
            logger.error("CPU lane: %s %s got no answer (%s); answered 502", route.method, route.path, exc)
            response = error_response(502, "Bad Gateway")
            data = response.encode(common, head_only)
        finally:
            self.in_flight -= 1
        executor.deliver_encoded(exchange, response, data)

    async def _call(self, route: Route, frame: bytes) -> tuple[Response, bytes]:
        loop = self.loop
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            try:
                sock.connect(self.address)
            except BlockingIOError:  # the accept queue is full: every process busy, the queue too
                raise Refused("max-queue") from None
            except (ConnectionRefusedError, FileNotFoundError):
                raise LaneFailure("the CPU lane is not listening") from None
            try:
                async with asyncio.timeout(self.queue_timeout or None):
                    await loop.sock_sendall(sock, frame)
                    taken = await loop.sock_recv(sock, 1)
            except TimeoutError:
                raise Refused("queue-timeout") from None
            if taken != ACK:
                raise LaneFailure("the lane process closed the connection before taking the job")
            head = await _receive(loop, sock, REPLY.size)
            length, status, cpu_us, wall_us = REPLY.unpack(head)
            data = await _receive(loop, sock, length)
        finally:
            sock.close()
        if self.stats_slot is not None:
            self.stats_slot.cpu(route.index, cpu_us / 1e6, wall_us / 1e6)
        return Response(None, status), data


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = await loop.sock_recv_into(sock, view[got:])
        if not count:
            raise LaneFailure("the lane process went away mid-job (killed, or crashed)")
        got += count
    return bytes(buffer)
