"""ext/jsonresponse.c against the Python it stands for: JSONResponse.__init__ and
to_response() in C, compared with the references catzilla.responses keeps; then a real
server answering dict and JSONResponse handlers alike."""
from __future__ import annotations

import dataclasses
import typing

import httpx
import msgspec
import orjson
import pytest

from catzilla import JSONResponse, PlainTextResponse, Response
from catzilla import responses as module
from catzilla.responses import to_response


class Point(msgspec.Struct):
    x: int
    y: int


@dataclasses.dataclass
class Pair:
    a: int
    b: str


class Upper(JSONResponse):
    def render(self, content: typing.Any) -> bytes:
        return str(content).upper().encode()


class Tagged(JSONResponse):
    pass


Call = tuple[tuple[typing.Any, ...], dict[str, typing.Any]]
CALLS: list[Call] = [
    ((), {}),
    (({"message": "Hello, World!"},), {}),
    (([1, 2, 3], 201), {}),
    ((None, 204), {}),
    (({"a": 1}, 200, {"x-id": "7"}), {}),
    (({"a": 1}, 200, [("x-id", "7"), ("x-id", "8")]), {}),
    (({"a": 1}, 200, {}), {}),
    (({"a": 1},), {"media_type": "application/problem+json"}),
    (({"a": 1},), {"content_type": "application/json; charset=utf-8"}),
    (({"a": 1},), {"media_type": "application/x", "content_type": "ignored/when-media-type"}),
    ((), {"body": {"from": "body"}}),
    (({"content": "wins"},), {"body": {"body": "loses"}}),
    ((), {"content": {"k": 1}, "status_code": 202, "headers": {"a": "b"}}),
    ((2**70,), {}),                      # beyond orjson: the standard library's encoder
    (({1: "non-str key", 2.5: "float"},), {}),
    ((Point(1, 2),), {}),                # msgspec through orjson's default=
    (({"s": {3}},), {}),
    ((Pair(1, "b"),), {}),
    (("text",), {}),
    (({"a": 1}, "200"), {}),             # stored as given, as the Python stores it
]


def made_both_ways(cls: type[JSONResponse], args: tuple[typing.Any, ...],
                   kwargs: dict[str, typing.Any]) -> tuple[object, object]:
    def outcome(make: typing.Callable[[], object]) -> object:
        try:
            return made(make())
        except Exception as exc:  # the same error, both ways
            return type(exc), str(exc)

    def made(response: object) -> object:
        return type(response), vars(response)

    def reference() -> object:
        response = object.__new__(cls)
        module._json_init_reference(response, *args, **kwargs)
        return response

    return outcome(lambda: cls(*args, **kwargs)), outcome(reference)


@pytest.mark.parametrize("cls", [JSONResponse, Tagged, Upper])
@pytest.mark.parametrize("index", range(len(CALLS)))
def test_the_constructor_is_the_python_one(cls: type[JSONResponse], index: int) -> None:
    args, kwargs = CALLS[index]
    native, reference = made_both_ways(cls, args, kwargs)
    assert native == reference


@pytest.mark.parametrize("args, kwargs", [
    ((object(),), {}),                               # nothing can encode it
    (({"a": 1}, 200, None, None, "extra"), {}),      # too many positional arguments
    (({"a": 1},), {"colour": "red"}),                # no such parameter
    (({"a": 1},), {"content": {"b": 2}}),            # given twice
    (({"a": 1}, 200, 12), {}),                       # headers that are not headers
])
def test_bad_arguments_raise_what_the_python_raises(args: tuple[typing.Any, ...],
                                                   kwargs: dict[str, typing.Any]) -> None:
    with pytest.raises(Exception) as native:
        JSONResponse(*args, **kwargs)
    with pytest.raises(Exception) as reference:
        module._json_init_reference(object.__new__(JSONResponse), *args, **kwargs)
    assert native.type is reference.type


def test_a_keyword_spelt_as_a_new_string_is_still_that_keyword() -> None:
    name = "".join(["status", "_code"])  # equal to the interned name, not the same object
    assert JSONResponse({"a": 1}, **{name: 201}).status_code == 201


def test_a_subclass_calls_the_constructor_through_super() -> None:
    class Wrapped(JSONResponse):
        def __init__(self, content: typing.Any) -> None:
            super().__init__({"data": content}, 201)

    response = Wrapped([1])
    assert (response.status_code, response.body) == (201, b'{"data":[1]}')


def test_the_signature_is_the_documented_one() -> None:
    import inspect
    assert list(inspect.signature(JSONResponse).parameters) == [
        "content", "status_code", "headers", "media_type", "content_type", "body"]


@pytest.mark.parametrize("result", [
    {"a": 1}, [1, "b"], None, 3, 2.5, True, Point(3, 4), Pair(5, "c"), "text", b"\x00\x01",
    bytearray(b"ab"), memoryview(b"cd"), PlainTextResponse("already"), JSONResponse({"r": 1}),
])
def test_to_response_is_the_python_one(result: object) -> None:
    native = to_response(result)
    reference = module._to_response_reference(result)
    assert type(native) is type(reference)
    assert vars(native) == vars(reference)
    if isinstance(result, Response):
        assert native is result


def test_to_response_passes_on_what_cannot_be_encoded() -> None:
    with pytest.raises(TypeError):
        to_response(object())
    with pytest.raises(TypeError):
        module._to_response_reference(object())


def test_a_server_answers_a_dict_as_it_answers_a_json_response(serve: typing.Any) -> None:
    server = serve("jsonresponse_app:app")
    with httpx.Client(base_url=server.url) as client:
        for path in ("/dict", "/response", "/sync"):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert answer.headers["content-type"] == "application/json"
            assert answer.content == b'{"message":"Hello, World!","big":1180591620717411303424}'
        failed = client.get("/unencodable")
        assert failed.status_code == 500
        assert failed.headers["content-type"] == "application/json"
        assert client.get("/dict").status_code == 200  # the worker lives on


def test_to_response_asks_isinstance_as_the_python_does() -> None:
    class Posing:  # what a mock with spec=Response looks like to isinstance()
        @property
        def __class__(self) -> type:  # type: ignore[override]
            return PlainTextResponse

    thing = Posing()
    assert module._to_response_reference(thing) is thing
    assert to_response(thing) is thing


def test_what_the_slow_encoder_refuses_keeps_orjson_s_refusal_as_context() -> None:
    circular: list[typing.Any] = [2**70]
    circular.append(circular)
    with pytest.raises(TypeError) as native:
        JSONResponse(circular)
    with pytest.raises(TypeError) as reference:
        module._json_init_reference(object.__new__(JSONResponse), circular)
    assert str(native.value) == str(reference.value)

    def chain(exc: BaseException | None) -> list[type]:
        return [] if exc is None else [type(exc), *chain(exc.__context__)]

    assert chain(native.value) == chain(reference.value)
    assert orjson.JSONEncodeError in chain(native.value)
