"""ext/chain.c against the Python it stands for: `encode_answer` is
`None if response.streaming else response.encode(...)` (a JSONResponse with header pairs
encoded in C), `run_chain` is Executor.start_pipeline's inline steps."""
from __future__ import annotations

import contextvars

import pytest

from catzilla import JSONResponse, PlainTextResponse, Response, StreamingResponse
from catzilla._native import encode_answer, run_chain

COMMON = b"server: catzilla\r\ndate: Wed, 02 Dec 2026 17:00:00 GMT\r\n"


class Tagged(JSONResponse):
    pass


def responses() -> list[Response]:
    cors = JSONResponse({"message": "Hello, World!"})
    cors.raw_headers += [(b"Access-Control-Allow-Origin", b"https://example.com"), (b"Vary", b"Origin")]
    hooked = JSONResponse({"a": 1})
    hooked.headers["x-layered"] = "1"
    typed = JSONResponse({"a": 1}, headers={"Content-Type": "application/vnd.api+json"})
    framing = JSONResponse({"a": 1}, headers={"content-length": "1", "x-b": "2"})
    strs = JSONResponse({"a": 1})
    strs.raw_headers.append(("x-str", "value"))  # type: ignore[arg-type]  (str pairs, put in raw)
    many = JSONResponse([1, 2])
    for i in range(12):  # more than the C stack array holds
        many.raw_headers.append((b"x-n%d" % i, b"%d" % i))
    cookie = JSONResponse([1, 2])
    cookie.set_cookie("k", "v")
    return [
        JSONResponse({"message": "Hello, World!"}),
        cors, hooked, typed, framing, strs, many, cookie,
        JSONResponse({"a": 1}, 201, headers={"x-id": "7"}),
        JSONResponse(None, 204, headers={"x-id": "7"}),
        JSONResponse({"a": 1}, 304, headers={"x-id": "7"}),
        JSONResponse({"a": 1}, 298, headers={"x-id": "7"}),  # no status line yet: status_line() makes it
        JSONResponse({"a": 1}, media_type="application/problem+json", headers={"x-id": "7"}),
        Tagged({"sub": True}, headers={"x-id": "7"}),
        PlainTextResponse("hi", headers={"x-id": "7"}),
        Response(b"\x00\x01", media_type="application/octet-stream"),
    ]


@pytest.mark.parametrize("head_only", [False, True])
@pytest.mark.parametrize("index", range(len(responses())))
def test_encode_answer_is_the_response_s_own(index: int, head_only: bool) -> None:
    response = responses()[index]
    assert encode_answer(response, COMMON, head_only) == response.encode(COMMON, head_only)


def test_a_pair_that_is_not_a_tuple_gets_the_python_s_answer() -> None:
    response = JSONResponse({"a": 1})
    response.raw_headers.append([b"x-list", b"1"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        response.encode(COMMON)
    with pytest.raises(TypeError):
        encode_answer(response, COMMON, False)


def test_a_stream_is_not_encoded() -> None:
    assert encode_answer(StreamingResponse(iter([b"a"])), COMMON, False) is None


@pytest.mark.parametrize("pair", [(b"x-bad", b"a\r\nb"), (b"bad name", b"1"), (b"x-nul", b"\x00")])
def test_encode_answer_refuses_what_the_python_refuses(pair: tuple[bytes, bytes]) -> None:
    response = JSONResponse({"a": 1})
    response.raw_headers.append(pair)
    with pytest.raises(ValueError):
        response.encode(COMMON)
    with pytest.raises(ValueError):
        encode_answer(response, COMMON, False)


seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


def test_run_chain_runs_in_a_context_of_its_own() -> None:
    def chain(request: object) -> Response:
        seen.set("in the chain")
        response = JSONResponse({"request": request})
        response.headers["x-seen"] = seen.get()
        return response

    response, data = run_chain(chain, 7, COMMON, False)
    assert seen.get() == "unset"  # what the chain set stayed with it
    assert data == response.encode(COMMON) and b"x-seen: in the chain\r\n" in data
    assert data.endswith(b'{"request":7}')
    _, head = run_chain(chain, 7, COMMON, True)
    assert head == response.encode(COMMON, True)


def test_run_chain_passes_on_what_the_chain_raises() -> None:
    def chain(request: object) -> Response:
        seen.set("set before raising")
        raise LookupError("from the chain")

    with pytest.raises(LookupError, match="from the chain"):
        run_chain(chain, None, COMMON, False)
    assert seen.get() == "unset"
    with pytest.raises(TypeError):
        run_chain(chain, None, COMMON)  # type: ignore[call-arg]
