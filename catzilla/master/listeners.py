"""The listening sockets: bound by the master before it forks, or inherited.

Sources, in order: systemd socket activation (LISTEN_FDS), `--fd N`, then `--bind
HOST:PORT` (or `--host/--port`) and `--uds PATH`. Every worker inherits the same sockets.

Why one shared socket rather than one SO_REUSEPORT socket per worker slot, measured with
`python loadtests/accept_spread.py` (2 uvloop workers, 200 new connections, this 2-core
machine, 2026-11-25; the master holds every socket open in both modes, as ours does):

    mode       sequential   concurrent   one worker stopped: 40 new connections
    shared     93 / 107     94 / 106     all 40 answered by the other worker
    per-slot   94 / 106     88 / 112     23 answered, 17 stalled (hashed to the stopped slot)

- the spread is the same: with uvloop each worker accepts as it wakes, and the share test
  in tests/test_master.py checks both workers serve a real part of 200 connections;
- a shared accept queue belongs to every worker at once: while a worker is stuck, dying or
  being replaced, the others take its connections. A per-slot queue belongs to its slot:
  its connections wait for the replacement to boot (or until the client gives up), and are
  reset when the slot is retired (TTOU);
- systemd socket activation and `--fd` hand over one socket per address anyway, so only a
  shared socket serves every source the same way.
SO_REUSEPORT is set only with --reuse-port (for a second master binding the same port
during a binary upgrade): otherwise a port already in use is an error, not a silent share
of its traffic with whatever else bound it.
"""
from __future__ import annotations

import errno
import os
import socket
import stat
import typing

__all__ = ["bind_tcp", "bind_unix", "open_listeners", "systemd_fds"]

SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): inherited sockets start at fd 3


def bind_tcp(host: str, port: int, backlog: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # A restarted server must be able to bind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _probe(path: str) -> int:
    """connect() to the socket file at `path`: 0 (or EAGAIN: a full backlog) when a server
    accepts there, ECONNREFUSED only when nobody listens (a socket left by a dead server)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)  # a live server with a full backlog must not hang us
        return probe.connect_ex(path)
    finally:
        probe.close()


def _remove_stale_socket(path: str) -> None:
    """Clear the way for bind(): only a stale socket file is removed. A live server's socket,
    or anything that is not a socket (a file, a symlink), is an error naming the path."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket; not replacing it")
    code = _probe(path)
    if code == errno.ENOENT:  # removed meanwhile: the way is clear
        return
    if code != errno.ECONNREFUSED:
        detail = f" (connect: {os.strerror(code)})" if code else ""
        raise OSError(errno.EADDRINUSE, f"{path} is in use: another server accepts on it{detail}")
    os.unlink(path)


def bind_unix(path: str, backlog: int) -> socket.socket:
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o660)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def systemd_fds(environ: typing.MutableMapping[str, str] | None = None) -> list[int]:
    """Descriptors passed by systemd for this process (and unset the variables, as
    sd_listen_fds(1) does, so that children do not take them for their own)."""
    environ = os.environ if environ is None else environ
    try:
        if int(environ.get("LISTEN_PID", "0")) != os.getpid():
            return []
        count = int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))


def _from_fd(fd: int) -> socket.socket:
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"file descriptor {fd} is not a stream socket")
    sock.setblocking(False)
    return sock


def open_listeners(config: typing.Any) -> list[socket.socket]:
    """Inherited sockets (systemd, --fd), plus what --bind/--host/--port/--uds ask for; with
    inherited sockets and no address asked for, only those."""
    sockets = [_from_fd(fd) for fd in (systemd_fds() or list(config.fd))]
    addresses = config.tcp_addresses()
    if sockets and not (config.bind or config.host is not None or config.port is not None):
        addresses = []
    try:
        sockets += [bind_tcp(host, port, config.backlog, config.reuse_port) for host, port in addresses]
        if config.uds:
            sockets.append(bind_unix(config.uds, config.backlog))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets

