"""The application object users create: `app = Catzilla()`."""
from __future__ import annotations

import inspect
import logging
import typing

from .routing import Route, Router

__all__ = ["Catzilla"]

logger = logging.getLogger("catzilla")

Handler = typing.TypeVar("Handler", bound=typing.Callable[..., typing.Any])
Hook = typing.Callable[[], typing.Any]


class Catzilla:
    def __init__(self, **options: typing.Any) -> None:
        # Options the released 0.2 line accepted (production=..., and so on) are tolerated
        # so that existing apps start; server settings come from Config, not from here.
        self.options = options
        self.router = Router()
        self._on_startup: list[Hook] = []
        self._on_shutdown: list[Hook] = []

    # -- routes ----------------------------------------------------------------------------

    def route(self, path: str, methods: typing.Iterable[str] = ("GET",), *,
              name: str | None = None, timeout: float | None = None) -> typing.Callable[[Handler], Handler]:
        """`timeout`: seconds the handler may run before the request is answered 504 (None:
        the server's --request-timeout; 0: no limit)."""
        methods = [methods] if isinstance(methods, str) else list(methods)

        def register(handler: Handler) -> Handler:
            self.add_route(path, handler, methods, name=name, timeout=timeout)
            return handler

        return register

    def add_route(self, path: str, handler: typing.Callable[..., typing.Any],
                  methods: typing.Iterable[str] = ("GET",), *, name: str | None = None,
                  timeout: float | None = None) -> list[Route]:
        return self.router.add(path, methods, handler, name, timeout)

    def get(self, path: str, **kw: typing.Any) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["GET"], **kw)

    def post(self, path: str, **kw: typing.Any) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["POST"], **kw)

    def put(self, path: str, **kw: typing.Any) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["PUT"], **kw)

    def patch(self, path: str, **kw: typing.Any) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["PATCH"], **kw)

    def delete(self, path: str, **kw: typing.Any) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["DELETE"], **kw)

    def head(self, path: str, **kw: typing.Any) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["HEAD"], **kw)

    def options(self, path: str, **kw: typing.Any) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["OPTIONS"], **kw)

    @property
    def routes(self) -> list[Route]:
        return list(self.router.routes)

    # -- lifespan ----------------------------------------------------------------------------

    def on_startup(self, hook: Hook) -> Hook:
        """Run `hook` (def or async def) in each worker before it accepts connections."""
        self._on_startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run `hook` in each worker after it has stopped serving."""
        self._on_shutdown.append(hook)
        return hook

    async def startup(self) -> None:
        for hook in self._on_startup:
            result = hook()
            if inspect.isawaitable(result):
                await result

    async def shutdown(self) -> None:
        for hook in self._on_shutdown:
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("shutdown hook %r failed", hook)

    # -- serving ---------------------------------------------------------------------------

    def listen(self, port: int | None = None, host: str | None = None, **settings: typing.Any) -> None:
        """Serve until SIGTERM/SIGINT: in this process, or with `workers=N` (N > 1) under a
        master that forks N workers of this very app (as `catzilla run --preload` does).

        Arguments not given fall back to CATZILLA_* variables, then to the defaults."""
        from .config import Config
        from .serve import serve  # the one deliberate outward import (see pyproject.toml)

        status = serve(Config.from_env(port=port, host=host, **settings), app=self)
        if status:
            raise SystemExit(status)
