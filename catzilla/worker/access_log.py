"""The access log: one line per request, in the format and to the place the logging set-up
chose, without a logging record per request, and (where it can) without the logging handler
on the way out either.

A `logging` call costs a record, a formatter pass and a write with a lock: measured, that was
over twice the rest of a small request's Python work. When the lines go exactly where
`configure_logging` sends them (its one handler on the root logger, with its formatter,
nothing else attached to `catzilla.access`), each line is one `%` of a format built once a
second (the date, the pid and the constant fields already in it), exactly as that handler's
formatter would write it (text or JSON); the lines of a loop iteration are gathered and
written with one write, by a callback scheduled once per burst, and whatever is gathered is
written before the worker exits. Anything else (a handler, filter or formatter of the user's,
another root handler) gets ordinary records, decided once when the worker starts and again
after the app's startup hooks.

The common line (ASCII fields, a printable path) is made in C (ext/accesslog.c, AccessLines):
`exchange(exchange, status, size)`, HttpProtocol's one call per request, reads the fields and
appends the line to a buffer of UTF-8; any other line is made by `_text_line`/`_json_line`
here and copied in, and `AccessLog(loop, native=False)` makes every line here (the reference
tests/test_access_log_native.py compares the C lines with).

Which way the lines go out (`AccessLog.way`), decided with the handler:
- "descriptor": configure_logging's handler writes to a UTF-8 text stream over a descriptor
  (stderr, stdout, --log-file; its write not replaced). The C buffer is written to a
  descriptor of our own for that destination (a dup; a pipe reopened non-blocking through
  /proc/self/fd, so that a slow reader cannot stop the loop; a socket, such as journald's
  stream, sent to with MSG_DONTWAIT), by `AccessLines.write` scheduled straight with the
  burst's first line: no Python frame, lock, text layer or flush per loop iteration. A reader
  that falls behind leaves the rest in the buffer, written when the descriptor is writable
  again (add_writer); beyond --access-log-backlog bytes, lines are dropped and counted, and
  the count is logged when the reader has caught up. A stopping worker waits up to
  --access-log-drain seconds for the rest. SIGUSR1 (logrotate) decides again, so the lines
  follow the reopened file.
- "stream": configure_logging's handler, on a stream we cannot write under (a test's capture,
  a stream whose write was replaced, another encoding): one stream.write per burst, under the
  handler's lock, as the handler would.
- "records": a logging set-up of the user's own (a handler, filter or formatter on the way):
  a logging record per line, as any logger call.
A burst is bounded by what one loop iteration handles (the requests of the reads it
dispatched), so the buffer needs no limit of its own while the reader keeps up.
"""
from __future__ import annotations

import asyncio
import codecs
import io
import logging
import os
import select
import stat
import time
import typing
import weakref

import orjson

from .._native import ACCESS_OUT_PIPE, ACCESS_OUT_SEND, ACCESS_OUT_WRITE, AccessLines
from ..logs import access_logger

__all__ = ["AccessLog"]

# The message of a line, as the records carry it (logging's %-style arguments).
MESSAGE = '%s - "%s %s HTTP/%s" %d %s %.1fms'
# What a line gains when the request has an id (RequestIDMiddleware's request.state.request_id).
REQUEST_ID = " request_id=%s"
# The defaults of --access-log-backlog and --access-log-drain (config.py), for an AccessLog
# made without a worker (tests, loadtests/profile_request.py).
BACKLOG = 4 * 1024 * 1024
DRAIN_TIMEOUT = 5.0
# A descriptor the loop cannot watch (never seen: files do not say EAGAIN): tried again after this.
RETRY_DELAY = 0.05


class AccessLog:
    """The worker's access log. `log(client, method, path, version, status, size,
    duration_ms, request_id=None)` logs one line; `exchange(exchange, status, size)` the line
    of a finished Exchange (HttpProtocol's one call per request)."""

    log: typing.Callable[[str, str, str, str, int, "int | None", float, "str | None"], None]
    exchange: typing.Callable[[typing.Any, int, "int | None"], None]

    def __init__(self, loop: asyncio.AbstractEventLoop, native: bool = True, backlog: int = BACKLOG,
                 drain_timeout: float = DRAIN_TIMEOUT) -> None:
        self.loop = loop
        self.pid = os.getpid()
        self.lines: list[str] = []  # the Python lines (native=False)
        self.handler: logging.Handler | None = None
        self.way = "records"  # "descriptor", "stream" or "records": see the module's docstring
        self.backlog = backlog
        self.drain_timeout = drain_timeout
        self._fd = -1  # our descriptor for the handler's destination (way "descriptor")
        self._call_soon = loop.call_soon
        self._flush = self.flush
        # The second the cached format is for: [_start, _start + 1).
        self._start = 0.0
        self._format = ""
        self._time = ""  # JSON: the date and time of that second, for a line orjson writes
        # The lines made in C (ext/accesslog.c), the uncommon ones by _text_line/_json_line;
        # native=False: every line made here (the reference the C lines are compared with).
        self._native = AccessLines(time, self._new_second, self._call_soon, self._flush) if native else None
        self.decide()

    def decide(self) -> None:
        """Direct lines or records; again once the app's startup hooks (which may set up
        logging of their own) have run."""
        self.flush()  # lines gathered so far go where they were meant to
        self._close()
        self.handler = handler = _direct_handler()
        self._start = 0.0  # the next line builds the format of its second
        native = self._native
        if handler is None:
            self.way = "records"
            self.log = self._record
            self.exchange = self._exchange
            return
        json = handler.catzilla_format == "json"  # type: ignore[attr-defined]
        self.way = "stream"
        if native is not None:
            native.reset(json, self._json_line if json else self._text_line)
            self.log = native.log
            self.exchange = native.exchange
            destination = _destination(handler)
            if destination is not None:
                self._fd, mode = destination
                # given back by decide() or _close(), else when this AccessLog is collected
                self._closer = weakref.finalize(self, os.close, self._fd)
                native.output(self._fd, mode, self.backlog, self)
                self.way = "descriptor"
        else:
            self.log = self._json if json else self._text
            self.exchange = self._exchange

    def _exchange(self, exchange: typing.Any, status: int, size: int | None) -> None:
        request = exchange.request
        state = request._state
        self.log(exchange.connection._client_text(request), request.method, request.path, request.http_version,
                 status, size, (time.perf_counter() - exchange.started) * 1000.0,
                 None if state is None else state._data.get("request_id"))

    def _record(self, client: str, method: str, path: str, version: str, status: int,
                size: int | None, duration_ms: float, request_id: str | None = None) -> None:
        if not path.isprintable():
            path = _escaped(path)
        extra = {"client": client, "method": method, "path": path, "status": status,
                 "duration_ms": round(duration_ms, 3)}
        if request_id is None:
            access_logger.info(MESSAGE, client, method, path, version, status, "-" if size is None else size,
                               duration_ms, extra=extra)
            return
        request_id = str(request_id)  # whatever the app put in request.state.request_id
        if not request_id.isprintable():
            request_id = _escaped(request_id)
        extra["request_id"] = request_id
        access_logger.info(MESSAGE + REQUEST_ID, client, method, path, version, status,
                           "-" if size is None else size, duration_ms, request_id, extra=extra)

    def _fraction(self) -> float:
        """The part of its second this moment is; the burst's write scheduled with its
        first line."""
        now = time.time()
        fraction = now - self._start
        if not 0.0 <= fraction < 1.0:  # a new second (or the clock was set back)
            fraction = self._new_second(now)
        if not self.lines:
            self._call_soon(self._flush)
        return fraction

    def _text(self, client: str, method: str, path: str, version: str, status: int,
              size: int | None, duration_ms: float, request_id: str | None = None) -> None:
        fraction = self._fraction()
        self.lines.append(self._text_line(fraction, client, method, path, version, status, size, duration_ms,
                                          request_id))

    def _json(self, client: str, method: str, path: str, version: str, status: int,
              size: int | None, duration_ms: float, request_id: str | None = None) -> None:
        fraction = self._fraction()
        self.lines.append(self._json_line(fraction, client, method, path, version, status, size, duration_ms,
                                          request_id))

    def _text_line(self, fraction: float, client: str, method: str, path: str, version: str, status: int,
                   size: int | None, duration_ms: float, request_id: str | None = None) -> str:
        """A text line, `fraction` into the second of the current format."""
        if not path.isprintable():
            path = _escaped(path)
        # logging's asctime with its msecs: int of the fraction's milliseconds (%d truncates)
        line = self._format % (fraction * 1000.0, client, method, path, version, status,
                               "-" if size is None else size, duration_ms)
        if request_id is not None:
            request_id = str(request_id)
            line += REQUEST_ID % (request_id if request_id.isprintable() else _escaped(request_id))
        return line

    def _json_line(self, fraction: float, client: str, method: str, path: str, version: str, status: int,
                   size: int | None, duration_ms: float, request_id: str | None = None) -> str:
        """A JSON line, `fraction` into the second of the current format."""
        # orjson escapes '"', '\\' and U+0000-U+001F; isprintable() is false for those
        # control characters (and for more, which orjson then writes as they are).
        if request_id is None and path.isprintable() and '"' not in path and "\\" not in path:
            return self._format % (fraction * 1000.0, client, method, path, version, status,
                                   "-" if size is None else size, duration_ms,
                                   client, method, path, status, round(duration_ms, 3))
        # a path JSON must escape, or a request id: orjson writes the line
        message = MESSAGE % (client, method, path, version, status, "-" if size is None else size,
                             duration_ms)
        entry = {"time": self._time + ".%03dZ" % (fraction * 1000.0),
                 "level": "info", "logger": "catzilla.access", "pid": self.pid,
                 "message": message if request_id is None else message + REQUEST_ID % (request_id,),
                 "client": client, "method": method, "path": path, "status": status,
                 "duration_ms": round(duration_ms, 3)}
        if request_id is not None:
            entry["request_id"] = str(request_id)
        return orjson.dumps(entry).decode()

    def _new_second(self, now: float) -> float:
        """The format of the lines of this second; the fraction of it `now` is."""
        second = int(now)
        self._start = start = float(second)
        pid = str(self.pid)
        if self.handler.catzilla_format == "text":  # type: ignore[union-attr]
            # logging.Formatter's asctime: local time, ",msecs"
            head = time.strftime("[%Y-%m-%d %H:%M:%S,", time.localtime(second))
            middle = "] [" + pid + "] [INFO] catzilla.access: "
            self._format = head + "%03d" + middle + MESSAGE
        else:  # JSONFormatter's fields, in its order; message quotes escaped for JSON
            self._time = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            head = '{"time":"' + self._time + "."
            middle = 'Z","level":"info","logger":"catzilla.access","pid":' + pid + ',"message":"'
            self._format = (head + "%03d" + middle + MESSAGE.replace('"', '\\"') + '",'
                            '"client":"%s","method":"%s","path":"%s","status":%d,"duration_ms":%r}')
        if self._native is not None:
            self._native.second(start, head, middle)
        return now - start

    def _take(self) -> str | None:
        """The lines gathered, each with its end; None if there are none."""
        if self._native is not None:
            return self._native.take()
        lines = self.lines
        if not lines:
            return None
        self.lines = []
        lines.append("")  # the last line's end
        return "\n".join(lines)

    def flush(self) -> None:
        """Every line gathered so far, written now: in one write, or (a slow reader of the
        descriptor) waiting up to drain_timeout for it to take them (a worker that stops)."""
        if self._fd >= 0:
            self._drain()
            return
        self._write_text()

    def _write_text(self) -> None:
        """The lines gathered, through the handler's stream (also the descriptor way's, for a
        line the stream's encoder must write: a lone surrogate)."""
        text = self._take()
        if text is None:
            return
        handler = self.handler
        assert handler is not None
        with handler.lock:  # type: ignore[union-attr]  # a pool thread may log through it too
            try:
                stream = handler.stream  # type: ignore[attr-defined]
                if stream is None:  # a FileHandler closed by a SIGUSR1 reopen
                    stream = handler.stream = handler._open()  # type: ignore[attr-defined]
                stream.write(text)
                stream.flush()
            except Exception:
                handler.handleError(logging.makeLogRecord({"msg": "access log write failed"}))


    def _drain(self) -> None:
        native = self._native
        assert native is not None
        waiting = native.write()
        if not waiting:
            return
        deadline = time.monotonic() + self.drain_timeout
        poll = select.poll()
        poll.register(self._fd, select.POLLOUT)
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                self._give_up()
                return
            poll.poll(left * 1000.0)
            waiting = native.write()

    def _give_up(self) -> None:
        """A reader that did not take the last lines in drain_timeout: said, if it takes that."""
        native = self._native
        assert native is not None and self.handler is not None
        lost = native.discard()
        self._watch(False)
        record = logging.makeLogRecord({
            "name": access_logger.name, "levelno": logging.WARNING, "levelname": "WARNING",
            "msg": "access log: %d lines lost: its reader took nothing for %.1fs",
            "args": (lost, self.drain_timeout)})
        notice = (self.handler.format(record) + "\n").encode("utf-8", "backslashreplace")
        poll = select.poll()
        poll.register(self._fd, select.POLLOUT)
        if poll.poll(0):  # a stuck reader must not hold the worker's exit
            try:
                os.write(self._fd, notice)
            except OSError:
                pass

    def _close(self) -> None:
        """Our descriptor given back (lines written or given up on first)."""
        if self._fd < 0:
            return
        self._watch(False)
        assert self._native is not None
        self._native.output(-1, ACCESS_OUT_WRITE, 0, None)
        self._closer()  # os.close, once
        self._fd = -1

    # -- called by AccessLines.write (ext/accesslog.c)

    def _watch(self, on: bool) -> bool:
        """Write again when a slow reader has made room (on), or no longer (off)."""
        loop = self.loop
        if loop.is_closed():
            return False
        if not on:
            try:
                loop.remove_writer(self._fd)
            except (OSError, ValueError, RuntimeError):
                pass
            return False
        assert self._native is not None
        try:
            loop.add_writer(self._fd, self._native.write)
            return True
        except (OSError, ValueError, RuntimeError, NotImplementedError):
            loop.call_later(RETRY_DELAY, self._native.write)
            return False

    def _dropped(self, lines: int) -> None:
        access_logger.warning("access log: %d lines dropped: its reader was too slow (more than %d bytes "
                              "waiting, --access-log-backlog)", lines, self.backlog)

    def _failed(self, code: int) -> None:
        """A write that cannot succeed (the reader gone, a full disk): reported as the
        logging handler reports it."""
        assert self.handler is not None
        try:
            raise OSError(code, os.strerror(code))
        except OSError:
            self.handler.handleError(logging.makeLogRecord({"msg": "access log write failed"}))


def _destination(handler: logging.Handler) -> tuple[int, int] | None:
    """A descriptor of our own for where the handler's stream writes, and how to write to it
    (AccessLines.write); None where only the stream can write its text."""
    with handler.lock:  # type: ignore[union-attr]
        stream = getattr(handler, "stream", None)
        if stream is None and isinstance(handler, logging.FileHandler):  # closed by a SIGUSR1 reopen
            stream = handler.stream = handler._open()
        # the text the stream would write is our buffer's bytes: UTF-8, no newline translation
        # (POSIX), no write of someone's own in between
        if type(stream) is not io.TextIOWrapper or {"write", "flush"} & vars(stream).keys():
            return None
        try:
            if codecs.lookup(stream.encoding).name != "utf-8":
                return None
            stream.flush()
            fd = stream.fileno()
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError, LookupError):  # a stream without a descriptor (io.UnsupportedOperation)
            return None
    if stat.S_ISSOCK(mode):
        return os.dup(fd), ACCESS_OUT_SEND
    if stat.S_ISFIFO(mode):
        # A pipe's description (shared with the master and the other workers) stays blocking;
        # ours is its own, non-blocking.
        try:
            own = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return os.dup(fd), ACCESS_OUT_PIPE
        if os.path.sameopenfile(own, fd):
            return own, ACCESS_OUT_PIPE
        os.close(own)
        return os.dup(fd), ACCESS_OUT_PIPE
    return os.dup(fd), ACCESS_OUT_WRITE


def _escaped(path: str) -> str:
    """A decoded path with its control characters escaped: a %0D%0A from a client must not
    start a line of its own in a text log (log injection)."""
    return repr(path)[1:-1]


def _direct_handler() -> logging.Handler | None:
    """configure_logging's handler, if the access lines would reach it and only it, through
    its own formatter."""
    logger = access_logger
    if logger.handlers or logger.filters or not logger.propagate or logger.disabled:
        return None
    if not logger.isEnabledFor(logging.INFO):
        return None
    root = logging.getLogger()
    if len(root.handlers) != 1 or root.filters:
        return None
    handler = root.handlers[0]
    if getattr(handler, "catzilla_format", None) not in ("text", "json") or handler.filters \
            or handler.level > logging.INFO or not hasattr(handler, "stream") \
            or handler.formatter is not getattr(handler, "catzilla_formatter", None):
        return None
    return handler
