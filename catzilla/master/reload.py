"""--reload: watch the app's files and reload the workers through the master's HUP path.

A thread of the master waits on `watchfiles` (inotify, in Rust, outside the GIL) and, once
a batch of changes has settled (--reload-delay), sends the master SIGHUP: new workers import
the edited code while the old ones serve, and the old ones stop only once the new ones are
ready, so a reload drops no request, and an edit that does not import keeps the old code
serving (the master logs why). Any number of workers reload this way.

It needs the app as `module:attribute`, imported by the workers (not with --preload, and
not from app.listen(), whose app object cannot be imported anew).
"""
from __future__ import annotations

import fnmatch
import logging
import os
import signal
import threading
import typing
from pathlib import Path

__all__ = ["Reloader", "DEFAULT_INCLUDES", "DEFAULT_EXCLUDES"]

logger = logging.getLogger("catzilla.master")

# uvicorn's defaults: Python sources; hidden files, bytecode and editors' swap/backup files not.
DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", "*.py[cod]", ".sw.*", "~*", "*~")
# How often the watcher looks up from waiting on the files (to see whether it should stop).
POLL_MS = 500


class Reloader:
    def __init__(self, config: typing.Any) -> None:
        try:
            import watchfiles
        except ImportError:
            raise RuntimeError("--reload needs watchfiles: pip install 'catzilla[reload]'") from None
        self.watchfiles = watchfiles
        self.dirs = [Path(d).resolve() for d in (config.reload_dir or [os.getcwd()])]
        for directory in self.dirs:
            if not directory.is_dir():
                raise RuntimeError(f"--reload-dir {directory} is not a directory")
        self.includes = [*DEFAULT_INCLUDES, *config.reload_include]
        excludes = [*DEFAULT_EXCLUDES, *config.reload_exclude]
        self.excludes = [pattern for pattern in excludes if pattern not in config.reload_include]
        self.debounce_ms = max(1, int(config.reload_delay * 1000))
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.default_filter = watchfiles.DefaultFilter()  # .git, __pycache__, node_modules...

    def wanted(self, change: typing.Any, path: str) -> bool:
        if not self.default_filter(change, path):
            return False
        name = os.path.basename(path)
        if any(fnmatch.fnmatch(name, pattern) for pattern in self.excludes):
            return False
        return any(fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, pattern)
                   for pattern in self.includes)

    def start(self, master: typing.Any) -> None:
        """Watch in a thread of `master` (the Master, in this process)."""
        logger.info("--reload: watching %s for %s", ", ".join(map(str, self.dirs)), ", ".join(self.includes))
        self.thread = threading.Thread(target=self._watch, args=(master,), name="catzilla-reload", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=2 * POLL_MS / 1000)

    def _watch(self, master: typing.Any) -> None:
        pending: list[str] = []
        for changes in self.watchfiles.watch(*self.dirs, watch_filter=self.wanted, debounce=self.debounce_ms,
                                             step=50, stop_event=self.stop_event, rust_timeout=POLL_MS,
                                             yield_on_timeout=True, raise_interrupt=False):
            pending.extend(os.path.relpath(path) for _, path in changes)
            if not pending or getattr(master, "stopping", False):
                continue
            # The master ignores a HUP while a reload runs: an edit made meanwhile waits
            # here for it to end, so that the last edit is always the code that serves.
            # Nor is HUP sent before the master handles it (its default action would end it).
            if getattr(master, "reload_generation", None) is not None \
                    or signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None):
                continue
            names = sorted(set(pending))
            pending = []
            logger.info("--reload: %s changed; reloading", ", ".join(names[:5]) + (" ..." if len(names) > 5 else ""))
            os.kill(os.getpid(), signal.SIGHUP)
