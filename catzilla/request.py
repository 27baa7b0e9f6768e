"""The `Request` a handler receives as its first argument."""
from __future__ import annotations

import typing
from http.cookies import SimpleCookie

import orjson

from .datastructures import Address, Headers, QueryParams, State
from .forms import FormData, parse_form

__all__ = ["Request"]


class Request:
    """One HTTP request, fully received. Derived views (query, cookies, form) are built on
    first use and cached."""

    __slots__ = (
        "method", "path", "query_string", "path_params", "raw_headers", "body", "client",
        "http_version", "_query_params", "_cookies", "_form", "_state",
        "background", "responded", "_headers",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str = "",
        raw_headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
        client: Address | None = None,
        http_version: str = "1.1",
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.path_params: dict[str, typing.Any] = {}
        self.raw_headers = raw_headers if raw_headers is not None else []
        self._headers: Headers | None = None
        self.body = body
        self.client = client
        self.http_version = http_version
        self._query_params: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._form: FormData | None = None
        self._state: State | None = None
        self.background: list[typing.Any] | None = None  # filled by schedule_task()
        self.responded = False

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self.raw_headers)
        return headers

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
            cookies = {}
            for header in self.headers.getlist("cookie"):
                jar: SimpleCookie = SimpleCookie()
                try:
                    jar.load(header)
                except Exception:  # a malformed cookie header must not fail the request
                    continue
                cookies.update({name: morsel.value for name, morsel in jar.items()})
            self._cookies = cookies
        return cookies

    @property
    def state(self) -> State:
        state = self._state
        if state is None:
            state = self._state = State()
        return state

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
