"""The one way a server starts: `catzilla run` and `app.listen()` both end here.

Layers, outside in (checked by the import-linter contracts in pyproject.toml): the command
line (`cli`), this module, the master (`master/`), the worker (`worker/`), and the framework
the user's app is made of. Each imports only the ones inside it.
"""
from __future__ import annotations

import logging
import typing

from .config import Config
from .logs import configure_logging
from .master.arbiter import EXIT_WORKER_BOOT_ERROR, Master, run_server_start
from .master.listeners import open_listeners
from .worker.server import Worker

__all__ = ["serve"]

logger = logging.getLogger("catzilla")


def serve(config: Config, target: str | None = None, app: typing.Any = None) -> int:
    """Serve until stopped; returns the exit status.

    `target` (`module:app`) is imported by every worker after the fork, or once before it
    with --preload. An `app` object (from `app.listen()`) is served as it is: in this very
    process with one worker, else by workers forked from this process."""
    configure_logging(config.log_level, config.log_format, config.log_file)
    if app is not None and config.workers == 1:
        try:
            sockets = open_listeners(config)
        except (OSError, ValueError) as exc:
            logger.error("cannot listen: %s", exc)
            return EXIT_WORKER_BOOT_ERROR
        status = run_server_start(app)  # on_server_start hooks: here, once, before serving
        if status:
            return status
        return Worker(app, config, sockets).run()
    master = Master(target or f"{type(app).__name__} at {id(app):#x}", config)
    master.app = app
    return master.run()
