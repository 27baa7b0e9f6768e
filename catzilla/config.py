"""Every setting of the server, with its default, its flag and its environment variable.

One table drives the command line (`--keep-alive-timeout`), the environment
(`CATZILLA_KEEP_ALIVE_TIMEOUT`) and `app.listen(...)`; precedence is flag > environment >
default. Each default carries the reason it is what it is.
"""
from __future__ import annotations

import dataclasses
import os
import typing

__all__ = ["Config", "ENV_PREFIX", "setting_env"]

ENV_PREFIX = "CATZILLA_"


def _setting(default: typing.Any, help: str, *, env: str | None = None) -> typing.Any:
    return dataclasses.field(default=default, metadata={"help": help, "env": env})


def _default_workers() -> int:
    # WEB_CONCURRENCY is what Heroku, gunicorn and uvicorn read; Kubernetes manifests set it.
    try:
        return max(1, int(os.environ.get("WEB_CONCURRENCY", "1")))
    except ValueError:
        return 1


@dataclasses.dataclass
class Config:
    host: str = _setting("127.0.0.1", "Address to bind; loopback unless told otherwise, so a "
                         "development server is never exposed by accident.")
    port: int = _setting(8000, "TCP port to bind.")
    workers: int = dataclasses.field(default_factory=_default_workers, metadata={
        "help": "Worker processes (default: $WEB_CONCURRENCY or 1).", "env": None})
    threads: int = _setting(40, "Threads per worker for `def` handlers: sync handlers mostly "
                            "wait on I/O, so 40 overlapping waits per worker cost little memory.")
    log_level: str = _setting("info", "Logging level: debug, info, warning, error, critical.")
    keep_alive_timeout: float = _setting(5.0, "Seconds an idle keep-alive connection stays "
                                         "open; a little above typical client reuse gaps, like uvicorn's 5 s.")
    header_timeout: float = _setting(10.0, "Seconds a client has to send a whole request head "
                                     "(and between reads of a body): slow-loris clients are closed.")
    max_header_size: int = _setting(16384, "Bytes allowed for the request line plus headers "
                                    "(431 above): 16 KiB fits large cookies, not abuse.")
    max_body_size: int = _setting(16 * 1024 * 1024, "Bytes allowed for a request body (413 "
                                  "above): bodies are read into memory before the handler runs.")
    graceful_timeout: float = _setting(30.0, "Seconds a graceful stop waits for in-flight "
                                       "requests and background tasks before giving up on them.")
    backlog: int = _setting(2048, "Listen queue length: absorbs connection bursts while "
                            "workers are busy (the kernel caps it at net.core.somaxconn).")
    write_buffer_high: int = _setting(64 * 1024, "Bytes buffered for a slow client before the "
                                      "connection stops taking new pipelined requests.")

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None, **overrides: typing.Any) -> "Config":
        """Defaults, then CATZILLA_* variables, then explicit `overrides` (None = not given)."""
        environ = os.environ if environ is None else environ
        values: dict[str, typing.Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(setting_env(field))
            if raw is not None and raw != "":
                values[field.name] = parse_value(field, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def setting_env(field: dataclasses.Field[typing.Any]) -> str:
    return field.metadata.get("env") or ENV_PREFIX + field.name.upper()


def parse_value(field: dataclasses.Field[typing.Any], raw: str) -> typing.Any:
    kind = field.type if isinstance(field.type, type) else {"int": int, "float": float, "str": str}[field.type]
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{setting_env(field)}={raw!r} is not a valid {kind.__name__}") from None
