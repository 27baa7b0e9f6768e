"""ext/cors.c against the Python it stands for: CORSMiddleware's `phases` (C halves on the
usual paths) give the same states and the same response fields as its on_request and
on_response methods, for every policy shape and request."""
from __future__ import annotations

import itertools
import typing

import pytest

from catzilla import JSONResponse, PlainTextResponse
from catzilla.middleware.cors import CORSMiddleware
from catzilla.request import Request

POLICIES: list[dict[str, typing.Any]] = [
    {"allow_origins": ["https://a.example"]},
    {"allow_origins": ["https://a.example"], "allow_credentials": True, "expose_headers": ["X-Id"]},
    {"allow_origins": ["*"]},
    {"allow_origins": ["*"], "allow_credentials": True},
    {"allow_origins": ["*", "https://a.example"]},
    {"allow_origin_regex": r"https://.*\.example"},
    {"allow_origins": ["https://a.example"], "allow_methods": ["*"], "allow_headers": ["X-Token"]},
]
ORIGINS = [None, "https://a.example", "https://b.example", "null"]
METHODS = ["GET", "OPTIONS"]
FIELDS: list[list[typing.Any]] = [
    [],
    [(b"x-layered", b"1")],
    [(b"Vary", b"Accept-Encoding")],
    [(b"access-control-allow-origin", b"https://other")],
    [("x-str", "pair")],
    [[b"x-list", b"pair"]],
]


def request(method: str, origin: str | None, by_hand: bool = False) -> Request:
    fields = {"host": "h"}
    if origin is not None:
        fields["origin"] = origin
    if method == "OPTIONS":
        fields["access-control-request-method"] = "GET"
    if by_hand:
        return Request(method, "/", headers=fields)
    return Request(method, "/", headers=list(fields.items()), header_map=dict(fields))


@pytest.mark.parametrize("policy", range(len(POLICIES)))
def test_the_c_halves_are_the_methods(policy: int) -> None:
    middleware = CORSMiddleware(None, **POLICIES[policy])
    on_request, on_response = middleware.phases
    assert on_request != middleware.on_request  # the C ones
    for origin, method, fields, by_hand in itertools.product(ORIGINS, METHODS, FIELDS, (False, True)):
        state = on_request(request(method, origin, by_hand))
        expected = middleware.on_request(request(method, origin, by_hand))
        if isinstance(expected, PlainTextResponse):  # a preflight's answer
            assert (state.status_code, state.body, state.raw_headers) == \
                (expected.status_code, expected.body, expected.raw_headers)
            continue
        assert state == expected
        native, reference = JSONResponse({"a": 1}), JSONResponse({"a": 1})
        native.raw_headers, reference.raw_headers = list(fields), list(fields)
        assert on_response(request(method, origin), native, state) is native
        middleware.on_response(request(method, origin), reference, expected)
        assert native.raw_headers == reference.raw_headers, (origin, method, fields)


def test_a_subclass_with_its_own_half_keeps_it() -> None:
    class Logged(CORSMiddleware):
        def on_response(self, request: Request, response: typing.Any, state: typing.Any) -> typing.Any:
            return super().on_response(request, response, state)

    middleware = Logged(None, allow_origins=["https://a.example"])
    assert middleware.phases == (middleware.on_request, middleware.on_response)
