"""Logging set-up: text or JSON lines, to stderr or a file that SIGUSR1 reopens."""
from __future__ import annotations

import logging
import socket
import sys
import time
import typing

import orjson

__all__ = ["configure_logging", "reopen_log_files", "JSONFormatter", "access_logger", "printable_address"]

TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
access_logger = logging.getLogger("catzilla.access")


class JSONFormatter(logging.Formatter):
    """One JSON object per line; extra fields passed with `extra=` are kept."""

    _standard = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, typing.Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._standard and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "info", log_format: str = "text", log_file: str | None = None) -> None:
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    formatter = JSONFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    # worker/access_log.py writes the lines itself while these are the handler's: it checks.
    handler.catzilla_format = log_format  # type: ignore[attr-defined]
    handler.catzilla_formatter = formatter  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())


def reopen_log_files() -> None:
    """After logrotate moved the file away: start writing to a new one at the same path."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.close()  # the next emit opens the path again
            finally:
                handler.release()


def printable_address(sock: socket.socket) -> str:
    """A listening socket's address as the logs show it: http://host:port or unix:path."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{address}"
    host, port = address[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
