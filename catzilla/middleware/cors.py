"""CORS: Starlette's `CORSMiddleware`, with the Fetch standard's credentials rules.

    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example.com"],
                       allow_methods=["GET", "POST"], allow_headers=["X-Token"])

A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here, before
any route is looked up: 200 with the allow headers, or 400 "Disallowed CORS origin, method,
headers" naming what was refused (the browser enforces the policy either way; the 400 says
why). Any other request from an allowed origin gets Access-Control-Allow-Origin on its
response.

Where Starlette differs from the Fetch standard, the standard wins:
- with `allow_credentials`, the origin is never answered "*" (a browser rejects a
  credentialed response so marked): the request's own Origin is echoed;
- "*" in `allow_methods` allows any method, and is answered with a list that names the
  requested one (Starlette's fixed list refuses e.g. PURGE); "*" in `allow_headers` is
  answered with the requested headers, as in Starlette: a literal "*" would mean no header
  at all to a credentialed request;
- `Vary: Origin` is on every response whose CORS headers depend on the Origin (specific
  origins, a regex, or credentials), also when the request had none or a refused one, so a
  shared cache never hands one origin's answer to another.
"""
from __future__ import annotations

import re
import typing

from ..headerparse import TOKEN_CHARS
from .._native import CorsPhases
from ..request import Request
from ..response_headers import add_vary, set_field
from ..responses import PlainTextResponse, Response
from ._options import boolean, integer, strings
from .base import PhasedMiddleware

__all__ = ["CORSMiddleware", "ALL_METHODS", "SAFELISTED_HEADERS"]

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
# Request headers a browser never asks about in a preflight (Fetch's CORS-safelisted ones).
SAFELISTED_HEADERS = frozenset({"Accept", "Accept-Language", "Content-Language", "Content-Type"})


def _is_token(value: str) -> bool:
    return bool(value) and value.isascii() and TOKEN_CHARS.issuperset(value.encode("ascii"))


_VARY_ORIGIN = (b"Vary", b"Origin")
_ALLOW_ORIGIN = b"Access-Control-Allow-Origin"


class CORSMiddleware(PhasedMiddleware):
    def __init__(
        self,
        app: typing.Any,
        allow_origins: typing.Sequence[str] = (),
        allow_methods: typing.Sequence[str] = ("GET",),
        allow_headers: typing.Sequence[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        expose_headers: typing.Sequence[str] = (),
        max_age: int = 600,
    ) -> None:
        super().__init__(app)
        origins = strings("allow_origins", allow_origins)
        methods = strings("allow_methods", allow_methods)
        headers = strings("allow_headers", allow_headers)
        exposed = strings("expose_headers", expose_headers)
        for name, values in (("allow_methods", methods), ("allow_headers", headers),
                             ("expose_headers", exposed)):
            for value in values:
                if value != "*" and not _is_token(value):
                    raise ValueError(f"{name}: {value!r} is not a valid method or header name")
        self.allow_credentials = boolean("allow_credentials", allow_credentials)
        self.max_age = integer("max_age", max_age)
        if allow_origin_regex is not None and not isinstance(allow_origin_regex, str):
            raise TypeError(f"allow_origin_regex must be a string, got {allow_origin_regex!r}")
        self.allow_origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None

        self.allow_all_origins = "*" in origins
        self.allow_origins = frozenset(origins)
        self.allow_all_methods = "*" in methods
        # Methods are case-sensitive on the wire; browsers send the standard ones upper-cased.
        self.allow_methods = ALL_METHODS if self.allow_all_methods else tuple(m.upper() for m in methods)
        self.allow_all_headers = "*" in headers
        self.allow_headers = frozenset(h.lower() for h in SAFELISTED_HEADERS.union(headers) if h != "*")
        # Echo the Origin (rather than "*") when the answer differs between origins, or when
        # credentials are allowed: Fetch forbids "*" on a credentialed response.
        self.explicit_origin = not self.allow_all_origins or self.allow_credentials

        # Headers every allowed actual (non-preflight) response gets.
        self.simple_headers: dict[str, str] = {}
        if not self.explicit_origin:
            self.simple_headers["Access-Control-Allow-Origin"] = "*"
        if self.allow_credentials:
            self.simple_headers["Access-Control-Allow-Credentials"] = "true"
        if exposed:
            self.simple_headers["Access-Control-Expose-Headers"] = ", ".join(exposed)
        # The same, as the raw pairs a response's header list holds, encoded once here.
        self.simple_fields = tuple((name.encode("latin-1"), value.encode("latin-1"))
                                   for name, value in self.simple_headers.items())
        # The fields an allowed request's response gets set (lower-cased): a response with
        # none of them yet takes the pairs as they are, with no merging.
        self.own_fields = frozenset({name.lower() for name, _ in self.simple_fields}
                                    | ({_ALLOW_ORIGIN.lower(), b"vary"} if self.explicit_origin else set()))
        # What the response to a listed origin gets, when it has none of our fields yet (the
        # usual case): the pairs, origin included, made once here, not per request.
        self.listed_fields = {origin: self.simple_fields + (((_ALLOW_ORIGIN, origin.encode("latin-1")), _VARY_ORIGIN)
                                                            if self.explicit_origin else ())
                              for origin in self.allow_origins if origin != "*"}

        # Headers every preflight answer gets; the origin, and what "*" allows, per request.
        self.preflight_headers: dict[str, str] = {}
        if self.explicit_origin:
            self.preflight_headers["Vary"] = "Origin"
        else:
            self.preflight_headers["Access-Control-Allow-Origin"] = "*"
        self.preflight_headers["Access-Control-Allow-Methods"] = ", ".join(self.allow_methods)
        self.preflight_headers["Access-Control-Max-Age"] = str(self.max_age)
        if not self.allow_all_headers:
            self.preflight_headers["Access-Control-Allow-Headers"] = ", ".join(
                sorted(SAFELISTED_HEADERS.union(headers)))
        if self.allow_credentials:
            self.preflight_headers["Access-Control-Allow-Credentials"] = "true"

    @property
    def phases(self) -> typing.Any:
        """The halves in C (ext/cors.c: the usual paths, the methods below for the rest)
        when they are this class's own; read when a chain is compiled, so what the
        middleware holds by then is what they use."""
        phases = super().phases
        cls = type(self)
        if phases is None or cls.on_request is not CORSMiddleware.on_request \
                or cls.on_response is not CORSMiddleware.on_response \
                or "on_request" in vars(self) or "on_response" in vars(self):
            return phases
        native = CorsPhases(self, dict(self.listed_fields), tuple(self.own_fields), _VARY_ORIGIN,
                            self.explicit_origin)
        return native.on_request, native.on_response

    def is_allowed_origin(self, origin: str) -> bool:
        if self.allow_all_origins or origin in self.allow_origins:
            return True
        return self.allow_origin_regex is not None and self.allow_origin_regex.fullmatch(origin) is not None

    def on_request(self, request: Request) -> typing.Any:
        """A preflight's answer, or the request's Origin (None without one) for
        `on_response`."""
        # One dict look-up in the server's map (get_header's, without its call).
        mapping = request._header_map  # noqa: SLF001
        origin = mapping.get("origin") if mapping is not None else request.get_header("origin")
        if origin is None:
            return None
        if request.method == "OPTIONS" \
                and request.get_header("access-control-request-method") is not None:
            return self.preflight_response(request, origin)
        return origin

    def on_response(self, request: Request, response: Response, origin: str | None) -> Response:
        fields = response.raw_headers
        if origin is None:  # most requests (not from a browser's other origin)
            if self.explicit_origin:
                for name, _ in fields:
                    if name.lower() == b"vary":
                        add_vary(fields, _VARY_ORIGIN)
                        break
                else:  # add_vary's usual case, without its call
                    fields.append(_VARY_ORIGIN)
            return response
        listed = self.listed_fields.get(origin)
        # is_allowed_origin, spelled out: a listed origin costs no call.
        if listed is not None or self.allow_all_origins or self.is_allowed_origin(origin):
            own = self.own_fields
            for name, _ in fields:
                if name.lower() in own:
                    break
            else:  # none of ours there yet (the usual case): nothing to replace or merge
                if listed is not None:
                    fields.extend(listed)
                    return response
                fields.extend(self.simple_fields)
                if self.explicit_origin:
                    fields.append((_ALLOW_ORIGIN, origin.encode("latin-1")))
                    fields.append(_VARY_ORIGIN)
                return response
            for pair in self.simple_fields:
                set_field(fields, pair)
            if self.explicit_origin:
                set_field(fields, (_ALLOW_ORIGIN, origin.encode("latin-1")))
        if self.explicit_origin:
            add_vary(fields, _VARY_ORIGIN)
        return response

    def preflight_response(self, request: Request, origin: str) -> Response:
        requested_method = request.headers["access-control-request-method"].strip()
        requested_headers = request.headers.get("access-control-request-headers")
        headers = dict(self.preflight_headers)
        failures = []

        if self.is_allowed_origin(origin):
            if self.explicit_origin:
                headers["Access-Control-Allow-Origin"] = origin
        else:
            failures.append("origin")

        if self.allow_all_methods:
            if not _is_token(requested_method):
                failures.append("method")
            elif requested_method not in self.allow_methods:
                headers["Access-Control-Allow-Methods"] += f", {requested_method}"
        elif requested_method not in self.allow_methods:
            failures.append("method")

        if requested_headers is not None:
            names = [name.strip().lower() for name in requested_headers.split(",")]
            names = [name for name in names if name]  # "a, , b" and a trailing comma
            if self.allow_all_headers:
                if all(_is_token(name) for name in names):
                    if names:
                        headers["Access-Control-Allow-Headers"] = ", ".join(names)
                else:
                    failures.append("headers")
            elif any(name not in self.allow_headers for name in names):
                failures.append("headers")

        if failures:
            return PlainTextResponse("Disallowed CORS " + ", ".join(failures), 400, headers)
        return PlainTextResponse("OK", 200, headers)
