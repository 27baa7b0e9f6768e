"""`response`: Catzilla 0.2.3's fluent way to build a response.

    return response.status(201).set_header("X-Id", "7").json({"ok": True})

Every step returns a new builder (the shared `response` object is never changed, so two
handlers running at once in the pool cannot mix their statuses or headers); `json()`,
`html()`, `send()`/`text()` make the Response.
"""
from __future__ import annotations

import typing

from .responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

__all__ = ["ResponseBuilder", "response"]


class ResponseBuilder:
    __slots__ = ("_status", "_headers", "_cookies")

    def __init__(self, status_code: int = 200, headers: tuple[tuple[str, str], ...] = (),
                 cookies: tuple[dict[str, typing.Any], ...] = ()) -> None:
        self._status = status_code
        self._headers = headers
        self._cookies = cookies

    def status(self, code: int) -> "ResponseBuilder":
        if not 100 <= code <= 599:
            raise ValueError(f"not an HTTP status code: {code!r}")
        return ResponseBuilder(code, self._headers, self._cookies)

    def set_header(self, name: str, value: str) -> "ResponseBuilder":
        return ResponseBuilder(self._status, self._headers + ((name.lower(), str(value)),), self._cookies)

    header = set_header

    def set_cookie(self, name: str, value: str, max_age: int | None = None, expires: str | None = None,
                   path: str = "/", domain: str | None = None, secure: bool = False,
                   httponly: bool = False, samesite: str | None = "lax") -> "ResponseBuilder":
        cookie = {"key": name, "value": value, "max_age": max_age, "expires": expires, "path": path,
                  "domain": domain, "secure": secure, "httponly": httponly, "samesite": samesite}
        return ResponseBuilder(self._status, self._headers, self._cookies + (cookie,))

    def _finish(self, made: Response) -> Response:
        for name, value in self._headers:
            made.set_header(name, value)
        for cookie in self._cookies:
            made.set_cookie(**cookie)
        return made

    def json(self, data: typing.Any) -> Response:
        return self._finish(JSONResponse(data, self._status))

    def html(self, content: str) -> Response:
        return self._finish(HTMLResponse(content, self._status))

    def send(self, text: str) -> Response:
        return self._finish(PlainTextResponse(text, self._status))

    text = send


response = ResponseBuilder()
