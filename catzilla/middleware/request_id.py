"""Request IDs: one identifier per request, to follow it through logs and services.

    app.add_middleware(RequestIDMiddleware)             # header_name="X-Request-ID"

An incoming ID (set by a proxy or the calling service) is kept, so one ID follows the
request across hops; a missing or unacceptable one is replaced by a fresh uuid4 hex. The ID
is in `request.state.request_id` for the handler (and for inner middleware) and is sent back
in the same response header. An incoming ID is acceptable when it is 1 to 200 printable
ASCII characters: the value is copied into logs and other services' headers, so control
characters, non-ASCII and unbounded lengths from the client are not.
"""
from __future__ import annotations

import typing
import uuid

from ..headerparse import TOKEN_CHARS
from ..request import Request
from ..response_headers import set_field
from ..responses import Response
from .base import PhasedMiddleware

__all__ = ["RequestIDMiddleware"]

MAX_LENGTH = 200


def is_valid_request_id(value: str | None) -> bool:
    return value is not None and 0 < len(value) <= MAX_LENGTH and value.isascii() and value.isprintable()


class RequestIDMiddleware(PhasedMiddleware):
    def __init__(self, app: typing.Any, header_name: str = "X-Request-ID") -> None:
        super().__init__(app)
        if not isinstance(header_name, str):
            raise TypeError(f"header_name must be a string, got {header_name!r}")
        if not (header_name.isascii() and header_name
                and TOKEN_CHARS.issuperset(header_name.encode("ascii"))):
            raise ValueError(f"header_name {header_name!r} is not a valid header name")
        self.header_name = header_name
        self.raw_name = header_name.encode("ascii")

    def on_request(self, request: Request) -> bytes:
        # A repeated field would arrive combined ("a, b"): that names no single request.
        values = request.headers.getlist(self.header_name)
        request_id = values[0] if len(values) == 1 else None
        if not is_valid_request_id(request_id):
            request_id = uuid.uuid4().hex
        request.state.request_id = request_id
        return request_id.encode("ascii")

    def on_response(self, request: Request, response: Response, request_id: bytes) -> Response:
        set_field(response.raw_headers, (self.raw_name, request_id))
        return response
