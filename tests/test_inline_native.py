"""ext/inline.c against the Python it stands for: `encode` is `response.encode(...)` (the
usual JSONResponse encoded in C), `finish_inline` is Executor.start's inline steps."""
from __future__ import annotations

import asyncio
import types
import typing

import pytest

from catzilla import JSONResponse, PlainTextResponse, Response, StreamingResponse
from catzilla._native import encode, finish_inline

COMMON = b"server: catzilla\r\ndate: Wed, 02 Dec 2026 17:00:00 GMT\r\n"


class Tagged(JSONResponse):
    pass


def responses() -> list[Response]:
    with_header = JSONResponse({"a": 1}, headers={"x-id": "7"})
    cookie = JSONResponse([1, 2])
    cookie.set_cookie("k", "v")
    return [
        JSONResponse({"message": "Hello, World!"}),
        JSONResponse({"a": 1}, 201),
        JSONResponse(None, 204),
        JSONResponse({"a": 1}, 299),  # no status line in the table yet: status_line() makes it
        JSONResponse({"a": 1}, media_type="application/problem+json"),
        JSONResponse({"a": 1}, content_type="application/json"),
        with_header,
        cookie,
        Tagged({"sub": True}),
        PlainTextResponse("hi"),
        Response(b"\x00\x01", media_type="application/octet-stream"),
        Response(status_code=304),
    ]


@pytest.mark.parametrize("head_only", [False, True])
@pytest.mark.parametrize("index", range(len(responses())))
def test_encode_is_the_response_s_own(index: int, head_only: bool) -> None:
    response = responses()[index]
    assert encode(response, COMMON, head_only) == response.encode(COMMON, head_only)


def test_encode_refuses_what_the_python_refuses() -> None:
    bad = JSONResponse({"a": 1}, 99)
    with pytest.raises(ValueError):
        bad.encode(COMMON)
    with pytest.raises(ValueError):
        encode(bad, COMMON, False)
    mangled = JSONResponse({"a": 1})
    mangled.body = "not bytes"  # type: ignore[assignment]
    with pytest.raises(TypeError):
        encode(mangled, COMMON, False)


def run(handler: typing.Any, head_only: bool = False, name: str = "handler") -> tuple[Response, bytes | None]:
    return finish_inline(handler(), types.SimpleNamespace(name=name), COMMON, head_only)


def test_finish_inline_drives_and_encodes() -> None:
    async def handler() -> JSONResponse:
        return JSONResponse({"message": "Hello, World!"})

    response, data = run(handler)
    assert type(response) is JSONResponse
    assert data == response.encode(COMMON, False)
    assert data.endswith(b'\r\n\r\n{"message":"Hello, World!"}')


@pytest.mark.parametrize("result, kind", [({"a": 1}, JSONResponse), ("text", PlainTextResponse),
                                          (b"raw", Response), (None, JSONResponse)])
def test_finish_inline_makes_a_response_of_what_it_returned(result: object, kind: type) -> None:
    async def handler() -> object:
        return result

    response, data = run(handler, True)
    assert type(response) is kind
    assert data == response.encode(COMMON, True)


def test_finish_inline_leaves_a_stream_unencoded() -> None:
    async def handler() -> StreamingResponse:
        return StreamingResponse(iter([b"a"]))

    response, data = run(handler)
    assert isinstance(response, StreamingResponse) and data is None


def test_finish_inline_passes_the_handler_s_exception_on() -> None:
    async def handler() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        run(handler)


def test_finish_inline_closes_a_coroutine_that_suspends() -> None:
    closed = []

    async def handler() -> None:
        try:
            await asyncio.sleep(0)
        finally:
            closed.append(True)

    with pytest.raises(RuntimeError, match="handler sleepy suspended although it has no await"):
        run(handler, name="sleepy")
    assert closed == [True]


