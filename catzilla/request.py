"""The `Request` a handler receives as its first argument."""
from __future__ import annotations

import typing

import orjson

from ._native import parse_cookies
from .datastructures import Address, Headers, QueryParams, State
from .forms import FormData, parse_form

__all__ = ["Request"]


class Request:
    """One HTTP request, fully received. Derived views (query, cookies, form) are built on
    first use and cached."""

    __slots__ = (
        "method", "path", "query_string", "path_params", "body", "client", "http_version",
        "_header_items", "_header_map", "_headers", "_query_params", "_cookies", "_form",
        "_state", "background", "responded", "_trailers",
    )

    # Set once per worker by Catzilla.startup()/shutdown() (a process serves one app): read
    # through the class, so a request pays nothing for them, whether or not it looks.
    app: typing.Any = None  # the application serving this request
    lifespan_state: "typing.Mapping[str, typing.Any] | None" = None  # what the lifespan yielded

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str = "",
        headers: "list[tuple[str, str]] | typing.Mapping[str, str] | None" = None,
        body: bytes = b"",
        client: Address | None = None,
        http_version: str = "1.1",
        header_map: dict[str, str] | None = None,
    ) -> None:
        # The server passes the collector's items and map (ext/headers.c); the Headers
        # object around them is made only if the handler looks.
        self.method = method
        self.path = path
        self.query_string = query_string
        self.path_params: dict[str, typing.Any] = {}
        self._header_items = headers
        self._header_map = header_map
        self._headers: Headers | None = None
        if headers is not None and type(headers) is not list:
            self._adopt_headers(headers)
        self.body = body
        self.client = client
        self.http_version = http_version
        self._query_params: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._form: FormData | None = None
        self._state: State | None = None
        self.background: list[typing.Any] | None = None  # filled by schedule_task()
        self.responded = False
        self._trailers: list[tuple[str, str]] | None = None  # set by the server when any came

    def _adopt_headers(self, headers: "Headers | typing.Mapping[str, str]") -> None:
        """A Request built by hand (tests, adapters) with a Headers object or a mapping."""
        if isinstance(headers, Headers):
            self._headers = headers
        else:
            self._header_items = list(headers.items())

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self._header_items, self._header_map)
        return headers

    @property
    def trailers(self) -> Headers:
        """Fields sent after a chunked body (RFC 9112 7.1.2). Never merged into `headers`:
        they arrive after whatever checked the head (a proxy, a middleware) let it through."""
        return Headers(self._trailers or [])

    @property
    def query_params(self) -> QueryParams:
        params = self._query_params
        if params is None:
            params = self._query_params = QueryParams.from_string(self.query_string)
        return params

    @property
    def cookies(self) -> dict[str, str]:
        cookies = self._cookies
        if cookies is None:
            header = self.headers.get("cookie")
            cookies = parse_cookies(header) if header else {}
            self._cookies = cookies
        return cookies

    @property
    def state(self) -> State:
        state = self._state
        if state is None:
            # Starlette's rule: each request starts from a shallow copy of the lifespan's
            # state (its own attributes, the same objects), made only if the handler looks.
            state = self._state = State(self.lifespan_state)
        return state

    @state.setter
    def state(self, value: "State | typing.Mapping[str, typing.Any]") -> None:
        """Catzilla 0.2.3's apps write `request.state = getattr(request, "state", {})` and
        then use it as a dict: the same State back is kept, a mapping becomes a State."""
        self._state = value if isinstance(value, State) else State(value)

    def get_header(self, name: str, default: str | None = None) -> str | None:
        """The header `name` (any case), or `default` (Catzilla 0.2.3's method)."""
        return self.headers.get(name, default)

    @property
    def context(self) -> dict[str, typing.Any]:
        """Catzilla 0.2.3's per-request dict, where its middleware leaves things for the
        handler (`request.context["user"] = ...`); kept in request.state, made on first use."""
        data = self.state._data  # noqa: SLF001 - a key no attribute name can collide with
        context = data.get("catzilla.context")
        if context is None:
            context = data["catzilla.context"] = {}
        return context

    @context.setter
    def context(self, value: dict[str, typing.Any]) -> None:
        self.state._data["catzilla.context"] = value  # noqa: SLF001

    @property
    def url(self) -> str:
        host = self.headers.get("host", "")
        query = f"?{self.query_string}" if self.query_string else ""
        return f"http://{host}{self.path}{query}"

    def json(self) -> typing.Any:
        """The body decoded as JSON (raises `ValueError` when it isn't)."""
        return orjson.loads(self.body)

    def form(self) -> FormData:
        form = self._form
        if form is None:
            form = self._form = parse_form(self.headers.get("content-type"), self.body)
        return form

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"
