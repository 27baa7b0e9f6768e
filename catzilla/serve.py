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
from .worker.tls import server_context

__all__ = ["serve"]

logger = logging.getLogger("catzilla")


def serve(config: Config, target: str | None = None, app: typing.Any = None) -> int:
    """Serve until stopped; returns the exit status.

    `target` (`module:app`) is imported by every worker after the fork, or once before it
    with --preload. An `app` object (from `app.listen()`) is served as it is: in this very
    process with one worker, else by workers forked from this process."""
    configure_logging(config.log_level, config.log_format, config.log_file)
    try:
        server_context(config)  # once here: a bad file or password stops the start, clearly
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        logger.error("cannot set up TLS (--ssl-certfile %s, --ssl-keyfile %s): %s",
                     config.ssl_certfile, config.ssl_keyfile, exc)
        return EXIT_WORKER_BOOT_ERROR
    reloader = None
    if config.reload:
        refusal = _reload_refusal(config, app)
        if refusal:
            logger.error("--reload %s", refusal)
            return EXIT_WORKER_BOOT_ERROR
        from .master.reload import Reloader

        try:
            reloader = Reloader(config)
        except RuntimeError as exc:
            logger.error("%s", exc)
            return EXIT_WORKER_BOOT_ERROR
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
    if reloader is None:
        return master.run()
    reloader.start(master)
    try:
        return master.run()
    finally:
        reloader.stop()


def _reload_refusal(config: Config, app: typing.Any) -> str | None:
    """Why --reload cannot work with these settings, or None. It works with any number of
    workers: a HUP reload replaces them all."""
    if app is not None:
        return ("needs the app as module:attribute (`catzilla run module:app --reload`): an app "
                "object passed to app.listen() cannot be imported anew")
    if config.preload:
        return "and --preload exclude each other: with --preload the workers never import new code"
    return None
