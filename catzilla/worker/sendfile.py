"""Writing a file to a connection with sendfile(2): the kernel copies from the page cache to
the socket, so a 1 GiB download costs the worker no memory and no copies.

uvloop has no `loop.sendfile`, and refuses `add_writer` on a socket its transport owns. So
the socket is duplicated (another descriptor of the same connection): we write through the
duplicate, and wait for it to become writable, while the transport, idle meanwhile, keeps
reading (pipelined requests queue as usual). The transport's own buffer is drained first,
so nothing is written out of order.
"""
from __future__ import annotations

import asyncio
import os
import typing

__all__ = ["send_parts"]

DRAIN_POLL = 0.005  # seconds between looks at a transport buffer left by an earlier response


class Sender(typing.Protocol):
    """What send_parts uses of the connection (HttpProtocol)."""

    transport: asyncio.Transport | None
    write_resumed: asyncio.Future[None] | None  # resolved by connection_lost and resume_writing
    writing_paused: bool


async def send_parts(conn: Sender, loop: asyncio.AbstractEventLoop, parts: list[typing.Any],
                     fileno: int, write_timeout: float, chunk: int) -> int:
    """Send `parts` (bytes, or (offset, length) of the file `fileno`) after whatever the
    transport holds; returns the bytes sent. Raises ConnectionError when the client goes, and
    TimeoutError when it takes nothing for `write_timeout` seconds (0: no limit)."""
    transport = conn.transport
    assert transport is not None
    waited = 0.0
    while transport.get_write_buffer_size():
        await asyncio.sleep(DRAIN_POLL)
        waited += DRAIN_POLL
        if conn.transport is None:
            raise ConnectionResetError("client went away")
        if write_timeout and waited >= write_timeout:
            raise TimeoutError("client took no bytes")
    sock = transport.get_extra_info("socket")
    if sock is None:  # not a socket (the TestClient's transport in memory): plain writes
        return await _write_parts(conn, transport, parts, fileno, chunk)
    fd = os.dup(sock.fileno())
    sent = 0
    try:
        for part in parts:
            if type(part) is bytes:
                view = memoryview(part)
                while view:
                    try:
                        n = os.write(fd, view)
                    except BlockingIOError:
                        await _writable(conn, loop, fd, write_timeout)
                        continue
                    view = view[n:]
                    sent += n
                continue
            offset, count = part
            since_yield = 0
            while count:
                try:
                    n = os.sendfile(fd, fileno, offset, min(count, chunk))
                except BlockingIOError:
                    await _writable(conn, loop, fd, write_timeout)
                    since_yield = 0
                    continue
                if n == 0:  # the file shrank under us: the promised length cannot be kept
                    raise ConnectionAbortedError("file ended before its announced length")
                offset += n
                count -= n
                sent += n
                since_yield += n
                if since_yield >= chunk:  # a fast reader must not keep the loop to itself
                    await asyncio.sleep(0)
                    since_yield = 0
                    if conn.transport is None:
                        raise ConnectionResetError("client went away")
    finally:
        os.close(fd)
    return sent


async def _write_parts(conn: Sender, transport: asyncio.Transport, parts: list[typing.Any],
                       fileno: int, chunk: int) -> int:
    """send_parts through transport.write, the file read a chunk at a time."""
    sent = 0
    for part in parts:
        if type(part) is bytes:
            pieces: typing.Iterable[bytes] = (part,)
        else:
            pieces = _read_range(fileno, *part, chunk)
        for piece in pieces:
            if conn.transport is None:
                raise ConnectionResetError("client went away")
            transport.write(piece)
            sent += len(piece)
            if conn.writing_paused:
                conn.write_resumed = asyncio.get_running_loop().create_future()
                await conn.write_resumed
    return sent


def _read_range(fileno: int, offset: int, count: int, chunk: int) -> typing.Iterator[bytes]:
    while count:
        data = os.pread(fileno, min(count, chunk), offset)
        if not data:
            raise ConnectionAbortedError("file ended before its announced length")
        offset += len(data)
        count -= len(data)
        yield data


async def _writable(conn: Sender, loop: asyncio.AbstractEventLoop, fd: int, timeout: float) -> None:
    ready: asyncio.Future[None] = loop.create_future()
    conn.write_resumed = ready  # connection_lost resolves it: we then stop

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        if timeout:
            await asyncio.wait_for(ready, timeout)
        else:
            await ready
    finally:
        loop.remove_writer(fd)
        conn.write_resumed = None
    if conn.transport is None:
        raise ConnectionResetError("client went away")
