"""Routers: routes with shared settings (a prefix, tags, middleware, hooks, exception
handlers), defined apart from the app and included into it, or into another router.

    users = APIRouter(prefix="/users", tags=["users"])

    @users.get("/{user_id}")
    async def get_user(request, user_id: int): ...

    app.include_router(users, prefix="/api")        # GET /api/users/{user_id}

Including copies the routes as they are then (Starlette's rule): routes added to a router
afterwards are not seen by an app that included it before. `APIRouter` (FastAPI) and
`RouterGroup` with `include_group` (Catzilla 0.2.3) are the same class.

Paths are strict about a trailing slash: `/items` and `/items/` are two routes, and a
request for one never answers from the other (no redirect). A prefix is joined without
doubling the slash: prefix `/users` and path `/` give `/users/`, path `` gives `/users`.
"""
from __future__ import annotations

import bisect
import inspect
import typing

from .mounts import middleware_instance  # a pure ASGI middleware class gets its adapter
from .pipeline import Layer
from .responses import Response
from .returns import DEFAULT

if typing.TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Router", "APIRouter", "RouterGroup", "RouteDefinition", "join_path", "WEBSOCKET"]

Handler = typing.TypeVar("Handler", bound=typing.Callable[..., typing.Any])

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# A route definition's "method" for a WebSocket endpoint: the app keeps these in a table of
# their own, reached only by an upgrade request (see Catzilla.websocket_router).
WEBSOCKET = "WEBSOCKET"
Hook = typing.Callable[..., typing.Any]
# A hook's place among its layer's when none is given: 0.2.3's middle of 0..100.
DEFAULT_PRIORITY = 50


def _post_route(hook: Hook) -> Hook:
    """An after-hook as the pipeline calls it, `(request, response)`: 0.2.3's take only the
    request; what they return replaces the response only when it is a Response."""
    try:
        positional = [p for p in inspect.signature(hook).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return hook
    if len(positional) != 1:
        return hook
    if inspect.iscoroutinefunction(hook):
        async def after_async(request: typing.Any, response: typing.Any) -> typing.Any:
            result = await hook(request)
            return result if isinstance(result, Response) else None
        adapted: Hook = after_async
    else:
        def after(request: typing.Any, response: typing.Any) -> typing.Any:
            result = hook(request)
            return result if isinstance(result, Response) else None
        adapted = after
    # its own signature kept (no __wrapped__): the pipeline calls it with two arguments
    adapted.__name__ = adapted.__qualname__ = getattr(hook, "__qualname__", "post_route")
    return adapted


def join_path(prefix: str, path: str) -> str:
    if prefix and not prefix.startswith("/"):
        raise ValueError(f"a prefix must start with '/': {prefix!r}")
    if prefix.endswith("/"):
        raise ValueError(f"a prefix must not end with '/': {prefix!r}")
    if path and not path.startswith("/"):
        raise ValueError(f"route path must start with '/': {path!r}")
    joined = prefix + path
    return joined or "/"


class RouteDefinition:
    """A route as declared, before it is added to an app: what `include_router` copies."""

    __slots__ = ("path", "methods", "endpoint", "options", "layers", "tags")

    def __init__(self, path: str, methods: list[str], endpoint: typing.Callable[..., typing.Any],
                 options: dict[str, typing.Any], layers: list[Layer], tags: list[str]) -> None:
        self.path, self.methods, self.endpoint = path, methods, endpoint
        self.options, self.layers, self.tags = options, layers, tags


_ROUTE_DEFAULTS = {"name": None, "status_code": None, "response_class": None, "responses": None,
                   "tags": None, "summary": None, "description": None, "deprecated": None,
                   "include_in_schema": True, "dependencies": None, "middleware": None, "timeout": None,
                   "cpu_bound": False, "stream": False, "max_body_size": None}


def _given(arguments: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """A decorator's route keywords that differ from their defaults."""
    return {key: value for key, value in arguments.items()
            if (key == "response_model" and value is not DEFAULT)
            or (key in _ROUTE_DEFAULTS and value is not _ROUTE_DEFAULTS[key])}


def route_layer(middleware: typing.Iterable[typing.Any] | None) -> Layer:
    """A route's own `middleware=[...]`: wrapping middleware (anything with `dispatch`, or a
    Middleware spec) and, as in Catzilla 0.2.3, plain callables `(request) -> Response |
    None` that run before the handler."""
    layer = Layer()
    for item in middleware or ():
        if hasattr(item, "dispatch") or hasattr(item, "build") or isinstance(item, type):  # a class: pure ASGI
            layer.middleware.append(built(item, None))
        elif callable(item):
            layer.before.append(item)
        else:
            raise TypeError(f"route middleware must be a callable or a middleware, got {item!r}")
    return layer


def with_dependencies(options: dict[str, typing.Any], *outer: typing.Sequence[typing.Any] | None) -> dict[str, typing.Any]:
    """A copy of a route's options with `outer` dependencies (a router's, an include's) run
    before its own."""
    options = dict(options)
    options["dependencies"] = [d for deps in outer for d in deps or ()] + list(options.get("dependencies") or [])
    return options


def built(middleware: typing.Any, app: typing.Any) -> typing.Any:
    """A middleware object from a `Middleware(cls, **options)` spec, a class, or an object."""
    if isinstance(middleware, type):
        return middleware_instance(middleware, app, (), {})
    if hasattr(middleware, "build") and not hasattr(middleware, "dispatch"):
        if isinstance(getattr(middleware, "cls", None), type):  # Middleware(cls, ...)
            return middleware_instance(middleware.cls, app, middleware.args, middleware.options)
        return middleware.build(app)
    return middleware


class RouteOptions(typing.TypedDict, total=False):
    """The keywords of `route()`, which the method decorators (`get`, `post`, ...) pass on."""

    name: str | None
    status_code: int | None
    response_model: typing.Any
    response_class: type[typing.Any] | None
    responses: dict[typing.Any, typing.Any] | None
    tags: typing.Iterable[str] | None
    summary: str | None
    description: str | None
    deprecated: bool | None
    include_in_schema: bool
    dependencies: typing.Sequence[typing.Any] | None
    middleware: typing.Iterable[typing.Any] | None
    timeout: float | None
    cpu_bound: bool
    stream: bool
    max_body_size: int | None


class Scope:
    """What the app and routers share: decorators that declare routes and what wraps them."""

    layer: Layer

    def __init__(self) -> None:
        self.layer = Layer()
        self._before_priorities: list[int] = []  # beside layer.before, for add_hook
        self._after_priorities: list[int] = []

    # -- routes ------------------------------------------------------------------------------

    def add_route(self, path: str, endpoint: typing.Callable[..., typing.Any],
                  methods: typing.Iterable[str] = ("GET",), **options: typing.Any) -> typing.Any:
        raise NotImplementedError

    def route(self, path: str, methods: typing.Iterable[str] = ("GET",), *, name: str | None = None, status_code: int | None = None,
              response_model: typing.Any = DEFAULT, response_class: type[typing.Any] | None = None,
              responses: dict[typing.Any, typing.Any] | None = None, tags: typing.Iterable[str] | None = None,
              summary: str | None = None, description: str | None = None, deprecated: bool | None = None,
              include_in_schema: bool = True, dependencies: typing.Sequence[typing.Any] | None = None,
              middleware: typing.Iterable[typing.Any] | None = None, timeout: float | None = None,
              cpu_bound: bool = False, stream: bool = False, max_body_size: int | None = None,
              ) -> typing.Callable[[Handler], Handler]:
        """Register the decorated handler for `path` and `methods`. The keywords are FastAPI's
        (`status_code=` the default status, `response_model=` the shape of the JSON,
        `dependencies=` run before the handler, the rest for OpenAPI), plus Catzilla's
        `middleware=`, `timeout=` (seconds, 0: none), `cpu_bound=`, `stream=` (the handler reads
        the body as it arrives, from `request.stream()`) and `max_body_size=` (bytes, instead
        of --max-body-size)."""
        methods = [methods] if isinstance(methods, str) else list(methods)
        options = _given(locals())

        def register(handler: Handler) -> Handler:
            self.add_route(path, handler, methods, **options)
            return handler

        return register

    api_route = route  # FastAPI's name

    def get(self, path: str, **options: Unpack[RouteOptions]) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["GET"], **options)

    def post(self, path: str, **options: Unpack[RouteOptions]) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["POST"], **options)

    def put(self, path: str, **options: Unpack[RouteOptions]) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["PUT"], **options)

    def patch(self, path: str, **options: Unpack[RouteOptions]) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["PATCH"], **options)

    def delete(self, path: str, **options: Unpack[RouteOptions]) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["DELETE"], **options)

    def head(self, path: str, **options: Unpack[RouteOptions]) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["HEAD"], **options)

    def options(self, path: str, **options: Unpack[RouteOptions]) -> typing.Callable[[Handler], Handler]:
        return self.route(path, ["OPTIONS"], **options)

    def websocket(self, path: str, name: str | None = None) -> typing.Callable[[Handler], Handler]:
        """`@app.websocket("/ws/{room}") async def ws(websocket: WebSocket, room: str)`:
        path, query, header and cookie parameters bind as for HTTP routes (see
        catzilla.websockets). HTTP middleware and hooks do not run for WebSockets."""
        def register(endpoint: Handler) -> Handler:
            self.add_websocket_route(path, endpoint, name=name)
            return endpoint

        return register

    websocket_route = websocket  # Starlette's older name

    def add_websocket_route(self, path: str, endpoint: typing.Callable[..., typing.Any],
                            name: str | None = None) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"a WebSocket endpoint must be `async def`: {endpoint!r}")
        self.add_route(path, endpoint, [WEBSOCKET], name=name)

    # -- what wraps them ---------------------------------------------------------------------

    def add_middleware(self, middleware_class: type, *args: typing.Any, **options: typing.Any) -> None:
        """Starlette's rule: the middleware added last is the outermost. Built here, once
        (bad options fail at import, and every route of the layer shares the instance)."""
        if not isinstance(middleware_class, type) and hasattr(middleware_class, "process_request"):
            # Catzilla 0.2.3's middleware object (catzilla.cache's): two hooks, before and after.
            self.add_hook(middleware_class.process_request, options.get("priority", DEFAULT_PRIORITY))
            self.add_hook(middleware_class.process_response, options.get("priority", DEFAULT_PRIORITY), after=True)
            return
        self.layer.middleware.insert(0, middleware_instance(middleware_class, self.owner(), args, options))

    def owner(self) -> typing.Any:
        """What a middleware built here gets as its `app`: the app, or None on a router."""
        return None

    def middleware(self, kind: typing.Any = None, *, priority: int | None = None,
                   pre_route: bool | None = None, post_route: bool | None = None,
                   name: str | None = None) -> typing.Any:
        """`@app.middleware("http") async def mw(request, call_next)` (FastAPI), or Catzilla
        0.2.3's `@app.middleware(priority=10, pre_route=True)`: a hook, `(request) ->
        Response | None` before the handler, or with `post_route=True` after it, taking
        `(request)` as 0.2.3's do or `(request, response)` to see the response; a lower
        priority runs first."""
        if callable(kind):  # 0.2.3's bare `@app.middleware`
            self.add_hook(kind, DEFAULT_PRIORITY)
            return kind
        if kind is not None and kind != "http":
            raise ValueError(f"only 'http' middleware is supported, got {kind!r}")
        if kind == "http" and (priority, pre_route, post_route, name) == (None, None, None, None):
            def register(dispatch: Handler) -> Handler:
                from .middleware.base import BaseHTTPMiddleware

                self.add_middleware(BaseHTTPMiddleware, dispatch=dispatch)
                return dispatch

            return register

        def register_hook(hook: Handler) -> Handler:
            after = bool(post_route)
            self.add_hook(_post_route(hook) if after else hook,
                          DEFAULT_PRIORITY if priority is None else priority, after=after)
            return hook

        return register_hook

    def add_hook(self, hook: Hook, priority: int = DEFAULT_PRIORITY, *, after: bool = False) -> None:
        """Before (or `after`) the handler; hooks of a layer run by `priority`, lowest first,
        and in the order they were added within one priority."""
        hooks, priorities = (self.layer.after, self._after_priorities) if after \
            else (self.layer.before, self._before_priorities)
        at = bisect.bisect_right(priorities, priority)
        priorities.insert(at, priority)
        hooks.insert(at, hook)

    def before_request(self, hook: Handler) -> Handler:
        """`(request) -> Response | None`: a response (or anything a handler may return)
        short-circuits the handler."""
        self.add_hook(hook)
        return hook

    def after_request(self, hook: Handler) -> Handler:
        """`(request, response) -> Response` (None keeps the response)."""
        self.add_hook(hook, after=True)
        return hook

    def exception_handler(self, key: type[BaseException] | int) -> typing.Callable[[Handler], Handler]:
        """`(request, exc) -> Response` for an exception class (and its subclasses) or a
        status code (an HTTPException with it, or the server's own 404/405)."""
        def register(handler: Handler) -> Handler:
            self.add_exception_handler(key, handler)
            return handler

        return register

    # Catzilla 0.2.3's names.
    def set_exception_handler(self, key: type[BaseException] | int, handler: typing.Callable[..., typing.Any]) -> None:
        self.add_exception_handler(key, handler)

    def set_not_found_handler(self, handler: typing.Callable[..., typing.Any]) -> None:
        self.add_exception_handler(404, _request_only(handler))

    def set_internal_error_handler(self, handler: typing.Callable[..., typing.Any]) -> None:
        self.add_exception_handler(500, _request_only(handler))

    def add_exception_handler(self, key: type[BaseException] | int, handler: typing.Callable[..., typing.Any]) -> None:
        if not (isinstance(key, int) or (isinstance(key, type) and issubclass(key, BaseException))):
            raise TypeError(f"an exception handler is for an exception class or a status code, not {key!r}")
        self.layer.exception_handlers[key] = handler


def _request_only(handler: typing.Callable[..., typing.Any]) -> typing.Callable[..., typing.Any]:
    """0.2.3's not-found and internal-error handlers may take the request alone."""
    import inspect

    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return handler
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != 1 or any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return handler
    if inspect.iscoroutinefunction(handler):
        async def adapted(request: typing.Any, exc: BaseException) -> typing.Any:
            return await handler(request)
    else:
        def adapted(request: typing.Any, exc: BaseException) -> typing.Any:  # type: ignore[misc]
            return handler(request)
    return adapted


class Router(Scope):
    """Routes declared apart from the app; `include_router` adds them to it."""

    def __init__(self, prefix: str = "", *, tags: typing.Iterable[str] | None = None,
                 dependencies: typing.Iterable[typing.Any] | None = None,
                 middleware: typing.Iterable[typing.Any] | None = None,
                 exception_handlers: typing.Mapping[typing.Any, typing.Callable[..., typing.Any]] | None = None
                 ) -> None:
        super().__init__()
        join_path(prefix, "")  # checks the prefix
        self.prefix = prefix
        self.tags = list(tags or [])
        self.dependencies = list(dependencies or [])
        # As a route's: wrapping middleware, or (Catzilla 0.2.3's RouterGroup) plain
        # callables that run before each of its handlers.
        own = route_layer(middleware)
        self.layer.middleware.extend(own.middleware)
        for hook in own.before:
            self.add_hook(hook)
        for key, handler in (exception_handlers or {}).items():
            self.add_exception_handler(key, handler)
        self.definitions: list[RouteDefinition] = []

    def add_route(self, path: str, endpoint: typing.Callable[..., typing.Any],
                  methods: typing.Iterable[str] = ("GET",), **options: typing.Any) -> None:
        methods = [methods] if isinstance(methods, str) else [m.upper() for m in methods]
        tags = list(options.pop("tags", None) or [])
        layer = route_layer(options.pop("middleware", None))
        options["dependencies"] = self.dependencies + list(options.get("dependencies") or [])
        self.definitions.append(RouteDefinition(join_path(self.prefix, path), methods, endpoint,
                                                options, [self.layer, layer], self.tags + tags))

    def include_router(self, router: "Router", prefix: str = "", *,
                       tags: typing.Iterable[str] | None = None,
                       dependencies: typing.Sequence[typing.Any] | None = None) -> None:
        for definition in router.definitions:
            self.definitions.append(RouteDefinition(
                join_path(self.prefix + prefix, definition.path), definition.methods,
                definition.endpoint, with_dependencies(definition.options, self.dependencies, dependencies),
                [self.layer, *definition.layers], self.tags + list(tags or []) + definition.tags))

    include_group = include_router  # Catzilla 0.2.3


APIRouter = Router
RouterGroup = Router
