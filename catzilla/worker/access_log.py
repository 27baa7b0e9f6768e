"""The access log: one line per request, in the format and to the place the logging set-up
chose, without a logging record per request.

A `logging` call costs a record, a formatter pass and a write with a lock: measured, that was
over twice the rest of a small request's Python work. When the lines go exactly where
`configure_logging` sends them (its one handler on the root logger, nothing else attached to
`catzilla.access`), they are formatted here, as that handler's formatter would (text or
JSON), gathered while the loop runs, and written once per loop iteration. Anything else (a
handler or filter of the user's on `catzilla.access`, another root handler) gets ordinary
records, decided once when the worker starts.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

import orjson

from ..logs import access_logger

__all__ = ["AccessLog"]


class AccessLog:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.decide()
        self.pid = os.getpid()
        self.lines: list[str] = []
        self._second = -1
        self._text_format = ""

    def decide(self) -> None:
        """Direct lines or records; again once the app's startup hooks (which may set up
        logging of their own) have run."""
        self.handler = _direct_handler()
        self.json = self.handler is not None and self.handler.catzilla_format == "json"  # type: ignore[attr-defined]

    def log(self, client: str, method: str, path: str, version: str, status: int,
            size: int | None, duration_ms: float) -> None:
        if self.handler is None:
            access_logger.info(
                '%s - "%s %s HTTP/%s" %d %s %.1fms', client, method, path, version, status,
                "-" if size is None else size, duration_ms,
                extra={"client": client, "method": method, "path": path, "status": status,
                       "duration_ms": round(duration_ms, 3)})
            return
        now = time.time()
        if not self.json:
            second = int(now)
            if second != self._second:  # logging's asctime, up to the second, once a second
                self._second = second
                self._text_format = time.strftime("[%Y-%m-%d %H:%M:%S", time.localtime(second)) \
                    + ",%03d] [" + str(self.pid) + '] [INFO] catzilla.access: %s - "%s %s HTTP/%s" %d %s %.1fms'
            line = self._text_format % (now % 1 * 1000, client, method, path, version, status,
                                        "-" if size is None else size, duration_ms)
        else:
            message = '%s - "%s %s HTTP/%s" %d %s %.1fms' % (
                client, method, path, version, status, "-" if size is None else size, duration_ms)
            line = orjson.dumps({
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (now % 1 * 1000),
                "level": "info", "logger": "catzilla.access", "pid": self.pid, "message": message,
                "client": client, "method": method, "path": path, "status": status,
                "duration_ms": round(duration_ms, 3)}).decode()
        if not self.lines:
            self.loop.call_soon(self.flush)
        self.lines.append(line)

    def flush(self) -> None:
        """Every line gathered in this loop iteration, in one write."""
        lines, self.lines = self.lines, []
        if not lines:
            return
        handler = self.handler
        assert handler is not None
        handler.acquire()
        try:
            stream = handler.stream  # type: ignore[attr-defined]
            if stream is None:  # a FileHandler closed by a SIGUSR1 reopen
                stream = handler.stream = handler._open()  # type: ignore[attr-defined]
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except Exception:
            handler.handleError(logging.makeLogRecord({"msg": "access log write failed"}))
        finally:
            handler.release()


def _direct_handler() -> logging.Handler | None:
    """configure_logging's handler, if the access lines would reach it and only it."""
    logger = access_logger
    if logger.handlers or logger.filters or not logger.propagate or logger.disabled:
        return None
    if not logger.isEnabledFor(logging.INFO):
        return None
    root = logging.getLogger()
    if len(root.handlers) != 1 or root.filters:
        return None
    handler = root.handlers[0]
    if getattr(handler, "catzilla_format", None) is None or handler.filters or handler.level > logging.INFO \
            or not hasattr(handler, "stream"):
        return None
    return handler
