"""Trusted hosts: Starlette's `TrustedHostMiddleware`.

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com", "*.example.com"])

A request whose Host names none of `allowed_hosts` is answered 400 "Invalid host header"
before it reaches a route: it guards against Host header attacks (poisoned password-reset
links, cache poisoning) when the app builds URLs from the Host. "*.example.com" matches any
subdomain (not example.com itself); "*" alone allows every host. With `www_redirect`, a
request for "example.com" when only "www.example.com" is allowed is redirected there (307).

Host names are compared case-insensitively (RFC 9110 4.2.3), without the port; an IPv6
literal keeps its brackets ("[::1]"). The redirect's Location is scheme-relative
("//www.example.com/path"): the server does not know whether a proxy in front took the
request over TLS, and the client resolves it against the scheme it used.
"""
from __future__ import annotations

import typing
from urllib.parse import quote

from ..request import Request
from ..responses import PlainTextResponse, Response
from ._options import boolean, strings
from .base import PhasedMiddleware

__all__ = ["TrustedHostMiddleware"]

ENFORCE_DOMAIN_WILDCARD = "Domain wildcard patterns must be like '*.example.com'."


def host_of(authority: str) -> str:
    """The host part of a Host value: "Example.com:8000" -> "example.com", "[::1]:80" -> "[::1]"."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        end = authority.find("]")
        return authority[:end + 1] if end != -1 else authority
    return authority.partition(":")[0]


class TrustedHostMiddleware(PhasedMiddleware):
    def __init__(self, app: typing.Any, allowed_hosts: typing.Sequence[str] | None = ("*",),
                 www_redirect: bool = True) -> None:
        super().__init__(app)
        hosts = strings("allowed_hosts", ("*",) if allowed_hosts is None else allowed_hosts)
        for pattern in hosts:
            # Only a leading "*." is a wildcard; "*" anywhere else would be read literally,
            # which is never what was meant.
            misplaced = "*" in pattern[1:]
            if misplaced or (pattern.startswith("*") and pattern != "*" and not pattern.startswith("*.")):
                raise ValueError(f"{ENFORCE_DOMAIN_WILDCARD} Got {pattern!r}")
        self.allowed_hosts = tuple(pattern.lower() for pattern in hosts)
        self.allow_any = "*" in self.allowed_hosts
        self.www_redirect = boolean("www_redirect", www_redirect)

    def on_request(self, request: Request) -> Response | None:
        """None for an allowed host (the rest of the chain runs), else the refusal."""
        if self.allow_any:
            return None
        authority = request.get_header("host", "")
        host = host_of(authority)
        found_www_redirect = False
        for pattern in self.allowed_hosts:
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return None
            if "www." + host == pattern:
                found_www_redirect = True
        if found_www_redirect and self.www_redirect:
            query = f"?{request.query_string}" if request.query_string else ""
            # request.path is percent-decoded: encode it again for the Location.
            path = quote(request.path, safe="/:@!$&'()*+,;=~")
            location = f"//www.{authority.strip()}{path}{query}"
            return Response(None, 307, {"Location": location})
        return PlainTextResponse("Invalid host header", 400)
