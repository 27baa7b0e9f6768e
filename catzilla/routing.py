"""Routes and the router: path templates compiled once, matched per request."""
from __future__ import annotations

import inspect
import logging
import re
import typing

from ._native import Resolver, TemplateMatcher
from .binding import Binding
from .dependencies import Plan
from .kinds import HandlerKind, classify
from .returns import DEFAULT, Returns

logger = logging.getLogger("catzilla")

__all__ = ["Route", "Router", "compile_path", "ROUTE_OPTIONS"]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(\w+))?\}")
# A converter only chooses what a segment may match; the annotation does the conversion.
_CONVERTERS = {"str": "[^/]+", "path": ".*", "int": "-?[0-9]+", "float": "-?[0-9.]+"}


def compile_path(path: str) -> tuple[re.Pattern[str] | None, list[str]]:
    """`/items/{item_id}` -> (regex with a named group per parameter, ["item_id"]).

    A template without parameters gives no regex: it is matched by dict lookup."""
    if not path.startswith("/"):
        raise ValueError(f"route path must start with '/': {path!r}")
    names: list[str] = []
    pattern, position = "^", 0
    for match in _PARAM.finditer(path):
        name, converter = match.group(1), match.group(2) or "str"
        if converter not in _CONVERTERS:
            raise ValueError(f"unknown path converter {converter!r} in {path!r}")
        if name in names:
            raise ValueError(f"duplicate path parameter {name!r} in {path!r}")
        names.append(name)
        pattern += re.escape(path[position:match.start()]) + f"(?P<{name}>{_CONVERTERS[converter]})"
        position = match.end()
    if not names:
        return None, []
    return re.compile(pattern + re.escape(path[position:]) + "$"), names


# A segment that is a parameter and nothing else, which ext/templates.c matches itself.
_WHOLE_SEGMENT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(str|int))?\}")
_MAX_SEGMENTS = 64  # ext/templates.c's MAX_SEGMENTS


def split_template(path: str) -> tuple[str | tuple[str, str], ...] | None:
    """`/items/{item_id:int}` -> ("", "items", ("item_id", "int")): what TemplateMatcher
    compares a path's segments with. None for a template only its regex can match (a
    parameter inside a segment, a path or float converter, a literal beyond ASCII)."""
    segments: list[str | tuple[str, str]] = []
    for part in path.split("/"):
        whole = _WHOLE_SEGMENT.fullmatch(part)
        if whole is not None:
            segments.append((whole.group(1), whole.group(2) or "str"))
        elif "{" in part or not part.isascii():
            return None
        else:
            segments.append(part)
    return tuple(segments) if len(segments) <= _MAX_SEGMENTS else None


# What a route may be declared with besides its path, methods and handler (FastAPI's
# decorator keywords, and Catzilla's timeout= and cpu_bound=).
ROUTE_OPTIONS = frozenset({
    "name", "timeout", "status_code", "response_model", "response_class", "responses", "summary",
    "description", "deprecated", "include_in_schema", "cpu_bound", "dependencies", "stream",
    "max_body_size",
})


class Route:
    """One (path, method) and everything decided about its handler at registration.

    `status_code`, `response_model`, `response_class`, `responses`, `tags`, `summary`,
    `description` (default: the handler's docstring), `deprecated`, `include_in_schema` and
    `name` are the decorator's keywords as given (OpenAPI reads them, with
    `binding.fields`); `plan` is how its dependencies and result are handled (None: the
    handler is called as it is, and its result made a response as usual)."""

    __slots__ = ("path", "method", "endpoint", "name", "kind", "binding", "index", "warned_awaitable",
                 "timeout", "path_names", "layers", "tags", "pipeline", "status_code", "response_model",
                 "response_class", "responses", "summary", "description", "deprecated", "include_in_schema",
                 "cpu_bound", "dependencies", "returns", "plan",
                 "streams", "takes_form", "max_body_size")

    def __init__(self, path: str, method: str, endpoint: typing.Callable[..., typing.Any],
                 path_names: list[str], name: str | None = None, index: int = 0,
                 timeout: float | None = None, *, status_code: int | None = None,
                 response_model: typing.Any = DEFAULT, response_class: typing.Any = None,
                 responses: dict[typing.Any, typing.Any] | None = None, summary: str | None = None,
                 description: str | None = None, deprecated: bool | None = None,
                 include_in_schema: bool = True, cpu_bound: bool = False,
                 dependencies: typing.Sequence[typing.Any] | None = None, stream: bool = False,
                 max_body_size: int | None = None) -> None:
        self.path = path
        self.method = method
        self.endpoint = endpoint
        self.name = name or getattr(endpoint, "__name__", type(endpoint).__name__)
        self.kind = classify(endpoint)
        self.binding = Binding(endpoint, path_names)
        self.index = index  # this route's row in the stats block
        self.warned_awaitable = False
        # Seconds its handler may run before the request is answered 504; None: the server's
        # --request-timeout; 0: no limit.
        self.timeout = _timeout(timeout)
        self.path_names = path_names
        # What wraps it, from the routers it came through (see pipeline.py); compiled into
        # `pipeline` when the app starts, None when nothing does.
        self.layers: list[typing.Any] = []
        self.tags: list[str] = []
        self.pipeline: typing.Any = None
        self.status_code = status_code
        self.response_class = response_class
        self.responses = dict(responses or {})
        self.summary = summary
        doc = inspect.getdoc(endpoint) if inspect.isroutine(endpoint) else None
        self.description = description if description is not None else (doc or "")
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        # Run the handler in the CPU lane (other processes; see catzilla/worker/cpu_lane.py).
        self.cpu_bound = bool(cpu_bound)
        if self.cpu_bound and self.kind is not HandlerKind.SYNC:
            raise ValueError(f"{method} {path}: cpu_bound=True is for a plain `def` handler (it runs in "
                             f"another process); an `async def` handler runs on the event loop")
        self.dependencies = list(dependencies or [])  # the layers' and the decorator's, outer first
        self.returns = Returns(endpoint, self.binding.owner, status_code=status_code,
                               response_model=response_model, response_class=response_class)
        self.response_model = self.returns.model  # as given, or from the return annotation
        self.plan = Plan(self, self.dependencies, self.returns.respond) \
            if self.dependencies or self.binding.dependencies or self.returns.needed else None
        # How its body is received (see HttpProtocol._head_complete): whole before the
        # handler runs (the default), as a stream the handler reads (`stream=True`), or, for
        # a handler that takes files or form fields, through the multipart parser as it
        # arrives. `max_body_size`: its own limit in bytes instead of --max-body-size.
        self.takes_form = any(field.source in ("form", "file") for field in self.binding.fields)
        self.receive_body(stream, max_body_size)
        if self.cpu_bound and (self.streams or self.takes_form):
            raise ValueError(f"{method} {path}: cpu_bound=True needs the whole body as bytes, to send it "
                             f"to the CPU lane; a streamed body or form and file parameters (parsed as they "
                             f"arrive) cannot cross: take the request and read request.body or "
                             f"request.form() in the handler, or drop cpu_bound")

    def receive_body(self, stream: bool = False, max_body_size: int | None = None) -> None:
        """The route's `stream=` and `max_body_size=` keywords."""
        if max_body_size is not None and (isinstance(max_body_size, bool)
                                          or not isinstance(max_body_size, int) or max_body_size < 0):
            raise ValueError(f"max_body_size is a number of bytes >= 0, got {max_body_size!r}")
        self.streams = bool(stream)
        self.max_body_size = max_body_size

    @property
    def receives_body_itself(self) -> bool:
        """Its body is not simply read whole under --max-body-size."""
        return self.streams or self.takes_form or self.max_body_size is not None

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def __repr__(self) -> str:
        return f"<Route {self.method} {self.path} {self.kind.label}>"


def _timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    timeout = float(timeout)
    if not timeout >= 0:  # negative, or NaN
        raise ValueError(f"a route's timeout is seconds >= 0 (0: no limit), got {timeout}")
    return timeout


Methods = dict[str, Route]
# Router.resolve's answer: (route, raw path parameters or None, the Allow header or None).
Resolved = tuple[Route | None, dict[str, str] | None, str | None]
# What "no limit" on a body's total size is to the header collector: its Content-Length.
UNBOUNDED_BODY = 2 ** 62


class Router:
    def __init__(self) -> None:
        self.static: dict[str, Methods] = {}
        self.dynamic: list[tuple[re.Pattern[str], Methods]] = []
        self._templates: dict[str, Methods] = {}
        self.routes: list[Route] = []
        self._largest_body: tuple[tuple[int, int], int | None] | None = None  # see largest_body
        # resolve(method, path): where a request goes (_resolve's answer), in one C call
        # (ext/templates.c's Resolver) that asks match_template for a path with parameters.
        self.resolve: typing.Callable[[str, str], Resolved] = Resolver(self.static, self.allowed, self.match_regex)

    @property
    def match_template(self) -> typing.Callable[[str, str], Resolved]:
        """match_template(method, path): resolve's answer for a path among the templates,
        compiled at the first request after one was added (see _compile_templates)."""
        return self.resolve.templates  # type: ignore[attr-defined, no-any-return]

    @match_template.setter
    def match_template(self, match: typing.Callable[[str, str], Resolved]) -> None:
        self.resolve.templates = match  # type: ignore[attr-defined]

    def add(self, path: str, methods: typing.Iterable[str], endpoint: typing.Callable[..., typing.Any],
            name: str | None = None, timeout: float | None = None, **options: typing.Any) -> list[Route]:
        """`options`: the rest of Route's keywords (ROUTE_OPTIONS)."""
        regex, names = compile_path(path)
        table = self._templates.get(path)
        if table is None:
            table = self._templates[path] = {}
            if regex is None:
                self.static[path] = table
            else:
                self.dynamic.append((regex, table))
                self.match_template = self._compile_then_match
        added = []
        for method in methods:
            method = method.upper()
            existing = table.get(method)
            if existing is not None and existing.method == method:  # not an implied HEAD
                route = self._replace(table, existing, endpoint, names, name, timeout, options)
                added.append(route)
                continue
            route = table[method] = Route(path, method, endpoint, names, name, len(self.routes), timeout,
                                          **options)
            self.routes.append(route)
            added.append(route)
            if method == "GET" and "HEAD" not in table:
                # HEAD is answered as GET is (RFC 9110 9.3.2), decided here and not per
                # request: the table's HEAD entry is the GET route itself (its handler, its
                # stats row; `routes` lists it once), until a HEAD route of its own replaces it.
                table["HEAD"] = route
        return added

    def _replace(self, table: Methods, existing: Route, endpoint: typing.Callable[..., typing.Any],
                 names: list[str], name: str | None, timeout: float | None,
                 options: dict[str, typing.Any]) -> Route:
        """A second registration of a method and path: the last one wins, with a warning, as
        in Catzilla 0.2.3, whose applications rely on it (a group re-declaring an app route).
        It takes the first one's place and stats row."""
        logger.warning("route %s %s registered again (%s): the last registration wins",
                       existing.method, existing.path, getattr(endpoint, "__qualname__", endpoint))
        route = Route(existing.path, existing.method, endpoint, names, name, existing.index, timeout,
                      **options)
        for method, current in table.items():  # its own entry, and an implied HEAD
            if current is existing:
                table[method] = route
        self.routes[existing.index] = route
        self._largest_body = None
        return route

    def largest_body(self, default: int) -> int | None:
        """The largest body any route may receive, None when every route receives its body
        whole under `default` (see HttpProtocol._head_complete). A route taking multipart
        forms has no total: its upload limits bound it."""
        cached = self._largest_body
        if cached is not None and cached[0] == (default, len(self.routes)):
            return cached[1]
        largest = self._find_largest_body(default)
        self._largest_body = ((default, len(self.routes)), largest)
        return largest

    def _find_largest_body(self, default: int) -> int | None:
        limits = [default]
        for route in self.routes:
            if route.receives_body_itself:
                if route.takes_form and route.max_body_size is None:
                    return UNBOUNDED_BODY
                limits.append(default if route.max_body_size is None else route.max_body_size)
        return max(limits) if len(limits) > 1 else None

    def _resolve(self, method: str, path: str) -> Resolved:
        """What `resolve` answers (its reference): where a request goes, decided here only: (route, raw path parameters or None,
        None); no route: (None, None, None) when nothing has this path (404), (None, None,
        allow) when it has not this method (405 with `Allow: allow`). A path without
        parameters is one dict look-up; templates are tried in the order they were added."""
        table = self.static.get(path)
        if table is None:
            return self.match_template(method, path)
        route = table.get(method)
        if route is None:
            return None, None, self.allowed(table)
        return route, None, None

    def _compile_then_match(self, method: str, path: str) -> Resolved:
        """Compiled once for all the templates added (not once per template added)."""
        self.match_template = self._compile_templates()
        return self.match_template(method, path)

    def _compile_templates(self) -> typing.Callable[[str, str], Resolved]:
        """The templates, in the order they were added, segment by segment in C
        (ext/templates.c) when every one of them can be; else by their regexes."""
        templates = []
        for path, table in self._templates.items():
            if path in self.static:
                continue
            segments = split_template(path)
            if segments is None:
                return self.match_regex
            templates.append((segments, table))
        return TemplateMatcher(tuple(templates), self.allowed, self.match_regex)

    def match_regex(self, method: str, path: str) -> Resolved:
        """resolve's answer for a path among the templates, by their regexes."""
        for regex, table in self.dynamic:
            match = regex.match(path)
            if match is not None:
                route = table.get(method)
                if route is None:
                    return None, None, self.allowed(table)
                return route, match.groupdict(), None
        return None, None, None

    @staticmethod
    def allowed(table: Methods) -> str:
        """The Allow header of a path: its methods (HEAD is there wherever GET is, see add)."""
        return ", ".join(sorted(table))


def __getattr__(name: str) -> typing.Any:
    # `from catzilla.routing import APIRouter`, as from fastapi.routing: the router users
    # declare routes on lives in catzilla.routers (this module is the route table).
    if name in ("APIRouter", "RouterGroup"):
        from . import routers

        return getattr(routers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
