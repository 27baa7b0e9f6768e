"""The application object users create: `app = Catzilla()`."""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import typing

from .background_tasks import TaskEngine, TaskPriority, TaskSettings
from .datastructures import State
from .forms import FormLimits, use_server_limits
from .dependency_injection import get_default_container
from .mounts import Mount
from .openapi.docs import add_docs_routes
from .openapi.utils import get_openapi
from .pipeline import Layer, compile_pipeline
from .request import Request
from .routers import WEBSOCKET, Router, Scope, built, join_path, route_layer, with_dependencies
from .routing import _PARAM, ROUTE_OPTIONS, Route
from .routing import Router as RouteTable
from .staticfiles import StaticFiles

__all__ = ["Catzilla"]

logger = logging.getLogger("catzilla")

Handler = typing.TypeVar("Handler", bound=typing.Callable[..., typing.Any])
Hook = typing.Callable[[], typing.Any]


class NoMatchFound(LookupError):
    """url_path_for() found no route of that name and those parameters."""


# Catzilla 0.2.3's constructor keywords: accepted so that its apps start, and recorded in
# `app.compat_options`. Only enable_di and di_container change anything (the app's service
# container); server settings come from Config: flags, CATZILLA_* variables, app.listen().
COMPAT_0_2_3_OPTIONS = frozenset({
    "production", "use_jemalloc", "memory_profiling", "auto_memory_tuning", "memory_stats_interval",
    "auto_validation", "enable_di", "di_container", "show_banner", "log_requests", "enable_colors",
    "show_request_details", "upload_config",
})


class Catzilla(Scope):
    def __init__(self, *, title: str = "Catzilla", description: str = "", version: str = "0.1.0",
                 summary: str | None = None, debug: bool = False, docs_url: str | None = "/docs",
                 redoc_url: str | None = "/redoc", openapi_url: str | None = "/openapi.json",
                 root_path: str = "", lifespan: typing.Any = None,
                 on_startup: typing.Iterable[Hook] | None = None,
                 on_shutdown: typing.Iterable[Hook] | None = None,
                 exception_handlers: typing.Mapping[typing.Any, typing.Callable[..., typing.Any]] | None = None,
                 middleware: typing.Iterable[typing.Any] | None = None,
                 dependencies: typing.Iterable[typing.Any] | None = None,
                 openapi_tags: list[dict[str, typing.Any]] | None = None,
                 servers: list[dict[str, typing.Any]] | None = None, terms_of_service: str | None = None,
                 contact: dict[str, typing.Any] | None = None, license_info: dict[str, typing.Any] | None = None,
                 swagger_ui_parameters: dict[str, typing.Any] | None = None,
                 **compat_options: typing.Any) -> None:
        """FastAPI's keywords; title, description, version, summary, debug, docs_url,
        redoc_url, openapi_url and root_path are recorded as attributes (see README: not all
        are honoured yet); `openapi_url`, `docs_url`, `redoc_url`: where the OpenAPI document
        and its pages are served (None: not served); openapi_tags, servers,
        terms_of_service, contact, license_info go into the document and
        swagger_ui_parameters into the /docs page, as FastAPI's do. An unknown keyword is a
        TypeError naming it, never ignored."""
        unknown = sorted(set(compat_options) - COMPAT_0_2_3_OPTIONS)
        if unknown:
            raise TypeError(f"Catzilla() got unexpected keyword argument{'s' if len(unknown) > 1 else ''}: "
                            + ", ".join(repr(name) for name in unknown))
        self.compat_options = compat_options
        self.production = bool(compat_options.get("production", False))  # 0.2.3 apps read it
        self.title, self.description, self.version, self.summary = title, description, version, summary
        self.debug = debug
        self.docs_url, self.redoc_url, self.openapi_url = docs_url, redoc_url, openapi_url
        self.root_path = root_path
        Scope.__init__(self)  # the app's own layer: middleware, hooks, exception handlers
        self.router = RouteTable()
        # WebSocket endpoints: found only by an upgrade request (GET + Upgrade: websocket),
        # so they never answer, nor shadow, plain HTTP requests to the same path.
        self.websocket_router = RouteTable()
        self.unmatched_pipeline: typing.Any = None  # see prepare()
        self._on_startup: list[Hook] = list(on_startup or [])
        self._on_shutdown: list[Hook] = list(on_shutdown or [])
        # Taken here, wired in by the lifespan, middleware and dependencies work:
        self._lifespan = lifespan
        if lifespan is not None and not callable(lifespan):
            raise TypeError(f"lifespan must be a callable taking the app, got {lifespan!r}")
        self.state = State()  # app.state: shared by every request of a worker (request.app.state)
        self._on_server_start: list[Hook] = []
        self._lifespan_context: typing.Any = None  # the entered context manager, until shutdown
        for key, handler in (exception_handlers or {}).items():
            self.add_exception_handler(key, handler)
        # Starlette's order: the list's first is the outermost.
        self.layer.middleware[:0] = [built(item, self) for item in middleware or ()]
        self.dependencies = list(dependencies or [])  # run before every route's own
        self.openapi_schema: dict[str, typing.Any] | None = None  # app.openapi()'s, made once
        self.openapi_version = "3.1.0"
        self.openapi_tags, self.servers, self.terms_of_service = openapi_tags, servers or [], terms_of_service
        self.contact, self.license_info, self.swagger_ui_parameters = contact, license_info, swagger_ui_parameters
        self._asgi: typing.Any = None  # see __call__
        add_docs_routes(self)
        # Catzilla 0.2.3's named services (catzilla.dependency_injection): `enable_di` is on
        # unless turned off, as there; its container is the default one `@service` fills.
        self.di_container: typing.Any = None
        self.tasks: typing.Any = None  # the task engine, once enable_background_tasks() is called
        self.settings: typing.Any = None  # the server's catzilla.config.Config (see use_settings)
        if compat_options.get("enable_di", True):
            self.di_container = compat_options.get("di_container") or get_default_container()

    # -- routes ----------------------------------------------------------------------------
    # route(), get(), post(), ..., middleware(), before_request(), exception_handler() and the
    # rest are Scope's (catzilla/routers.py), shared with routers.

    def add_route(self, path: str, handler: typing.Callable[..., typing.Any],
                  methods: typing.Iterable[str] = ("GET",), *,
                  middleware: typing.Iterable[typing.Any] | None = None,
                  tags: typing.Iterable[str] | None = None, **options: typing.Any) -> list[Route]:
        """`options`: the decorators' keywords (see Scope.route): `timeout` in seconds the
        handler may run before the request is answered 504 (None: the server's
        --request-timeout; 0: no limit), `dependencies`, `status_code`, `response_model`...
        `middleware`: this route's own (see routers.route_layer)."""
        return self._add(path, methods, handler, options, [route_layer(middleware)], list(tags or []))

    def include_router(self, router: Router, prefix: str = "", *,
                       tags: typing.Iterable[str] | None = None,
                       dependencies: typing.Sequence[typing.Any] | None = None) -> None:
        """Add `router`'s routes (and those of the routers it includes) under `prefix`;
        `dependencies` run before the router's own."""
        for definition in router.definitions:
            self._add(join_path(prefix, definition.path), definition.methods, definition.endpoint,
                      with_dependencies(definition.options, dependencies), definition.layers,
                      list(tags or []) + definition.tags)

    include_routes = include_router  # Catzilla 0.2.3's name (RouterGroup)

    def register_service(self, name: str, factory: typing.Callable[..., typing.Any], scope: str = "singleton",
                         dependencies: list[str] | None = None) -> typing.Any:
        """Register a named service (see catzilla.dependency_injection) in this app's container."""
        if self.di_container is None:
            raise RuntimeError("dependency injection is off for this app (Catzilla(enable_di=False))")
        return self.di_container.register(name, factory, scope, dependencies)

    def resolve_service(self, name: str, context: typing.Any = None) -> typing.Any:
        if self.di_container is None:
            raise RuntimeError("dependency injection is off for this app (Catzilla(enable_di=False))")
        return self.di_container.resolve(name, context)

    def get_middleware_stats(self) -> dict[str, typing.Any]:
        """The app's own middleware and hooks, in the order they run (0.2.3's name). Their
        timings are not measured; the server's `catzilla stats` has per-route latencies."""
        def named(hooks: list[typing.Any], priorities: list[int]) -> list[dict[str, typing.Any]]:
            return [{"name": getattr(hook, "__qualname__", repr(hook)), "priority": priority}
                    for hook, priority in zip(hooks, priorities)]

        return {
            "middleware": [type(item).__name__ for item in self.layer.middleware],
            "pre_route": named(self.layer.before, self._before_priorities),
            "post_route": named(self.layer.after, self._after_priorities),
            "timings_measured": False,
        }

    # -- Catzilla 0.2.3's task engine (catzilla.background_tasks.TaskEngine) ------------------

    def enable_background_tasks(self, workers: int | None = None, min_workers: int | None = None,
                                max_workers: int | None = None, queue_size: int | None = None,
                                **ignored: typing.Any) -> None:
        """Start-up of a task engine in each worker process: `workers` threads and a queue
        of `queue_size`; left out, the server's --task-workers and --task-queue-size (see
        catzilla.config). 0.2.3's other keywords (auto-scaling, memory pool, C
        compilation, profiling) are accepted and do nothing. Queued tasks still run when a
        worker stops, within the server's graceful timeout."""
        if self.tasks is not None:
            return
        self.tasks = TaskEngine(workers or max_workers or min_workers, queue_size)
        if self.settings is not None:
            self.tasks.configure(TaskSettings.from_config(self.settings))

        async def drain() -> None:
            await asyncio.to_thread(self.tasks.drain)

        self.on_shutdown(drain)

    def add_task(self, func: typing.Callable[..., typing.Any], *args: typing.Any, priority: typing.Any = None,
                 delay_ms: int = 0, max_retries: int | None = None, timeout_ms: int | None = None,
                 compile_to_c: bool | None = None, **kwargs: typing.Any) -> typing.Any:
        """Queue `func(*args, **kwargs)` (def or async def) and return its TaskResult. A
        failure is retried `max_retries` times (default --task-max-retries, 3 as in 0.2.3);
        `timeout_ms` (default --task-timeout, 30 s) bounds an async def task only: a thread
        cannot be interrupted."""
        if self.tasks is None:
            raise RuntimeError("Background task system not enabled. Call app.enable_background_tasks() first.")
        options = getattr(func, "task_options", {})
        defaults = self.tasks.settings
        return self.tasks.submit(
            func, args, kwargs, priority if priority is not None else options.get("priority", TaskPriority.NORMAL),
            delay_ms, max_retries if max_retries is not None else options.get("max_retries", defaults.max_retries),
            timeout_ms if timeout_ms is not None else options.get("timeout_ms", defaults.timeout * 1000))

    def task(self, priority: typing.Any = None, compile_to_c: bool = True, **options: typing.Any) -> typing.Callable[[Handler], Handler]:
        """Mark a function as a task with its defaults for add_task() (priority, max_retries,
        timeout_ms); the function itself is returned unchanged."""
        if self.tasks is None:
            raise RuntimeError("Background task system not enabled. Call app.enable_background_tasks() first.")

        def mark(func: Handler) -> Handler:
            func.task_options = {**options, **({"priority": priority} if priority is not None else {})}  # type: ignore[attr-defined]
            return func
        return mark

    def get_task_stats(self) -> typing.Any:
        if self.tasks is None:
            raise RuntimeError("Background task system not enabled. Call app.enable_background_tasks() first.")
        return self.tasks.stats()

    def get_task_result(self, task_id: str) -> typing.Any:
        """The TaskResult of a recent task of this worker, or None."""
        return self.tasks.results.get(task_id) if self.tasks is not None else None

    def mount_static(self, path: str, directory: str, *, name: str | None = None,
                     index_file: str = "index.html", enable_etags: bool = True,
                     enable_range_requests: bool = True, enable_directory_listing: bool = False,
                     enable_hidden_files: bool = False, max_file_size: int | None = None,
                     html: bool = False, cache_control: str | None = None,
                     **caching: typing.Any) -> StaticFiles:
        """Serve the files under `directory` at `path` (Catzilla 0.2.3's arguments; see
        catzilla.staticfiles). Its cache and compression options (`enable_hot_cache`,
        `cache_size_mb`, `cache_ttl_seconds`, `enable_compression`, `compression_level`) are
        accepted and unused: files go from the kernel's page cache with sendfile(2), and
        precompressed .br/.gz siblings are served to clients that accept them."""
        unknown = set(caching) - {"enable_hot_cache", "cache_size_mb", "cache_ttl_seconds",
                                  "enable_compression", "compression_level"}
        if unknown:
            raise TypeError(f"mount_static() got unknown arguments: {', '.join(sorted(unknown))}")
        if not path.startswith("/"):
            raise ValueError(f"mount path must start with '/': {path!r}")
        static = StaticFiles(directory=directory, html=html, index_file=index_file,
                             hidden_files=enable_hidden_files, etags=enable_etags,
                             ranges=enable_range_requests, max_file_size=max_file_size,
                             directory_listing=enable_directory_listing, cache_control=cache_control)
        static.attach(self, path, name)
        return static

    def owner(self) -> "Catzilla":
        return self

    def _add(self, path: str, methods: typing.Iterable[str], handler: typing.Callable[..., typing.Any],
             options: dict[str, typing.Any], layers: list[Layer], tags: list[str]) -> list[Route]:
        unknown = set(options) - ROUTE_OPTIONS
        if unknown:
            raise TypeError(f"unknown route options: {', '.join(sorted(unknown))}")
        options = with_dependencies(options, self.dependencies)  # the app's run first
        methods = list(methods)
        if methods == [WEBSOCKET]:
            return self.websocket_router.add(path, ["GET"], handler, **options)
        routes = self.router.add(path, methods, handler, **options)
        for route in routes:
            route.layers = layers
            route.tags = tags
        return routes

    def url_path_for(self, name: str, /, **params: typing.Any) -> str:
        """The path of the route called `name` (its `name=`, else its handler's name), with
        `params` put into its template."""
        for route in self.router.routes:
            if route.name == name:
                names = set(route.path_names)
                if names == set(params):
                    return _PARAM.sub(lambda m: str(params[m.group(1)]), route.path)
        raise NoMatchFound(f"no route named {name!r} with parameters {sorted(params)}")

    def mount(self, path: str, app: typing.Any, name: str | None = None) -> None:
        """Serve the ASGI application `app` (a Starlette or FastAPI app) at `path` and below,
        every method; it sees `path` as its scope's root_path (see catzilla.mounts). A
        `StaticFiles` is not wrapped as ASGI: its files are served on the worker's own path."""
        if getattr(app, "catzilla_static", False):
            app.attach(self, path, name)
            return
        prefix = path.rstrip("/")
        join_path(prefix, "")  # checks it
        endpoint = Mount(prefix, app, name)
        methods = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
        for template in (prefix or "/", prefix + "/{path:path}"):
            self._add(template, methods, endpoint.handle, {"name": endpoint.__name__}, [], [])

    def openapi(self) -> dict[str, typing.Any]:
        """The app's OpenAPI 3.1 document (FastAPI's method): made on the first call, which
        the server makes at start-up, then kept in `openapi_schema`."""
        if self.openapi_schema is None:
            self.openapi_schema = get_openapi(
                title=self.title, version=self.version, openapi_version=self.openapi_version,
                summary=self.summary, description=self.description, routes=self.routes,
                tags=self.openapi_tags, terms_of_service=self.terms_of_service, contact=self.contact,
                license_info=self.license_info,
                servers=self.servers or ([{"url": self.root_path}] if self.root_path else None))
        return self.openapi_schema

    async def __call__(self, scope: typing.Any, receive: typing.Any, send: typing.Any) -> None:
        """The app as an ASGI 3 application, for uvicorn, hypercorn or granian (see
        catzilla.asgi, which this reaches lazily: importing the framework loads no server)."""
        if self._asgi is None:
            from .asgi import ASGIAdapter  # a deliberate outward import (see pyproject.toml)

            self._asgi = ASGIAdapter(self)
        await self._asgi(scope, receive, send)

    def use_settings(self, config: typing.Any) -> None:
        """The server's settings (a catzilla.config.Config), given by the worker before it
        serves: the defaults of what the app itself runs (the task engine's task_*, and
        the upload limits of a form parsed from a body read whole)."""
        self.settings = config
        use_server_limits(FormLimits.from_config(config))
        if self.tasks is not None:
            self.tasks.configure(TaskSettings.from_config(config))

    def prepare(self, pool_run: typing.Any) -> None:
        """Compile every route's pipeline (hooks, middleware, exception handlers), once per
        worker before it serves; `pool_run(fn, *args)` runs `fn` in the worker's pool."""
        for route in self.router.routes:
            route.pipeline = compile_pipeline(route, [self.layer, *route.layers], self, pool_run)
        # Requests no route answers go through the app's own middleware and handlers.
        self.unmatched_pipeline = compile_pipeline(None, [self.layer], self, pool_run)
        if self.openapi_url:
            try:
                self.openapi()  # made at start-up, not by the first request that asks
            except Exception:  # a bug of ours must not keep the app from serving
                logger.exception("could not build the OpenAPI document: %s answers 500", self.openapi_url)

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

    def on_server_start(self, hook: Hook) -> Hook:
        """Run `hook` (def or async def) once per server start, before any worker accepts a
        request, whatever the number of workers (database migrations, warming a shared cache).
        It runs in a process of its own (the master with --preload or app.listen(), else a
        short-lived child of the master), so what it leaves in globals is not seen by the
        workers. Not run again by a HUP reload, a replaced worker or TTIN. If it raises, the
        server stops with exit status 4 (as when the app does not import)."""
        self._on_server_start.append(hook)
        return hook

    def server_start(self) -> None:
        """Run the on_server_start hooks, outside any event loop (called by the server, once).
        A sync hook is called as it is (it may run its own asyncio.run()); an async one, or
        an awaitable a sync one returns, gets an event loop of its own."""
        async def wait(awaitable: typing.Awaitable[typing.Any]) -> typing.Any:
            return await awaitable

        for hook in self._on_server_start:
            result = hook()
            if inspect.isawaitable(result):
                asyncio.run(wait(result))

    async def startup(self) -> None:
        """In each worker before it accepts connections: the on_startup hooks in order, then
        the lifespan is entered; what it yields is every request's initial `request.state`."""
        Request.app = self
        Request.root_path = self.root_path
        for hook in self._on_startup:
            result = hook()
            if inspect.isawaitable(result):
                await result
        if self._lifespan is not None:
            try:
                await self._enter_lifespan()
            except Exception as exc:
                # Raised on: the worker stops as on a failing on_startup hook (the master
                # then stops the server, status 3, before any worker serves).
                logger.error("the lifespan %s() failed on startup: %s: %s",
                             getattr(self._lifespan, "__qualname__", self._lifespan), type(exc).__name__, exc)
                raise

    async def shutdown(self) -> None:
        """After the worker has stopped serving: the lifespan is exited (the code after its
        `yield`), then the on_shutdown hooks run. A failure in one is logged, never stops
        the others."""
        if self._lifespan_context is not None:
            context, self._lifespan_context = self._lifespan_context, None
            try:
                if hasattr(context, "__aexit__"):
                    await context.__aexit__(None, None, None)
                else:
                    context.__exit__(None, None, None)
            except Exception:
                logger.exception("lifespan %r failed while shutting down", self._lifespan)
            Request.lifespan_state = None
        for hook in self._on_shutdown:
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("shutdown hook %r failed", hook)

    async def _enter_lifespan(self) -> None:
        """`lifespan(app)` as FastAPI/Starlette take it: an async context manager factory
        (@asynccontextmanager), a sync one (@contextmanager), or a bare (async) generator
        function. A sync one runs on the loop: nothing is served yet."""
        lifespan = self._lifespan
        if inspect.isasyncgenfunction(lifespan):
            lifespan = contextlib.asynccontextmanager(lifespan)
        elif inspect.isgeneratorfunction(lifespan):
            lifespan = contextlib.contextmanager(lifespan)
        context = lifespan(self)
        if hasattr(context, "__aenter__"):
            state = await context.__aenter__()
        elif hasattr(context, "__enter__"):
            state = context.__enter__()
        else:
            raise TypeError(f"lifespan {self._lifespan!r} returned {context!r}, not a context manager")
        self._lifespan_context = context
        if state is not None:
            if not isinstance(state, typing.Mapping):
                raise TypeError(f"lifespan {self._lifespan!r} yielded {type(state).__name__}: "
                                "it may yield a mapping (the requests' state) or nothing")
            Request.lifespan_state = dict(state) or None

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
