"""JSONResponse's constructor (ext/json_response.c) against the Python it replaced."""
from __future__ import annotations

import inspect
import typing

import orjson
import pytest

from catzilla import JSONResponse
from catzilla.response_headers import raw_pairs
from catzilla.responses import _dumps_slowly, _to_builtins


def reference(self: typing.Any, content: typing.Any = None, status_code: int = 200, headers: typing.Any = None,
              media_type: str | None = None, *, content_type: str | None = None, body: typing.Any = None) -> None:
    """JSONResponse.__init__ as it was written in Python."""
    self.status_code = status_code
    if media_type is not None:
        self.media_type = media_type
        self.exact_type = False
    elif content_type is not None:
        self.media_type = content_type
        self.exact_type = True
    if body is not None and content is None:
        content = body
    if type(self) is not JSONResponse and self._own_render:
        self.body = self.render(content)
    else:
        try:
            self.body = orjson.dumps(content, default=_to_builtins, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:
            self.body = _dumps_slowly(content)
    self.raw_headers = raw_pairs(headers) if headers else []


class OwnRender(JSONResponse):
    def render(self, content: typing.Any) -> bytes:
        return b"<%s>" % repr(content).encode()


class Plain(JSONResponse):
    pass


CASES: list[tuple[type, tuple[typing.Any, ...], dict[str, typing.Any]]] = [
    (JSONResponse, ({"message": "Hello, World!"},), {}),
    (JSONResponse, (), {}),
    (JSONResponse, ([1, 2], 201), {}),
    (JSONResponse, ({"a": 1}, 200, {"x-id": "7"}), {}),
    (JSONResponse, ({"a": 1}, 200, [("x", "1"), ("x", "2")], "application/problem+json"), {}),
    (JSONResponse, ({"a": 1},), {"content_type": "application/json; charset=utf-8"}),
    (JSONResponse, (), {"body": {"legacy": True}}),
    (JSONResponse, ({"wins": 1},), {"body": {"ignored": 1}}),
    (JSONResponse, (), {"content": {1: "non-str key"}, "status_code": 404, "headers": {}}),
    (JSONResponse, (2 ** 70,), {}),  # beyond orjson: the standard library's encoder
    (JSONResponse, ({"s": (1, 2)},), {}),
    (OwnRender, ({"a": 1}, 202), {}),
    (Plain, ({"a": 1},), {"media_type": "application/vnd+json"}),
]


@pytest.mark.parametrize("index", range(len(CASES)))
def test_the_c_constructor_is_the_python_one(index: int) -> None:
    cls, args, kwargs = CASES[index]
    made = cls(*args, **kwargs)
    expected = cls.__new__(cls)
    reference(expected, *args, **kwargs)
    assert vars(made) == vars(expected)
    assert list(vars(made)) == list(vars(expected))  # the same order: the same key layout


@pytest.mark.parametrize("args, kwargs", [((1, 200, None, None, "extra"), {}), ((), {"bogus": 1}),
                                          ((1,), {"content": 2}), ((), {"status_code": 200, "body": 1,
                                                                        "content_type": None, "x": 1})])
def test_wrong_arguments_are_refused_as_python_refuses_them(args: tuple[typing.Any, ...],
                                                            kwargs: dict[str, typing.Any]) -> None:
    with pytest.raises(TypeError):
        reference(object.__new__(JSONResponse), *args, **kwargs)
    with pytest.raises(TypeError):
        JSONResponse(*args, **kwargs)


def test_what_json_cannot_hold_raises_as_before() -> None:
    with pytest.raises(TypeError):
        JSONResponse(object())
    loop: dict[str, typing.Any] = {}
    loop["self"] = loop
    with pytest.raises(TypeError):
        JSONResponse(loop)


def test_a_subclass_constructor_calls_it_through_super() -> None:
    class Wrapped(JSONResponse):
        def __init__(self, data: typing.Any) -> None:
            super().__init__({"data": data}, 201)

    made = Wrapped([1])
    assert (made.status_code, made.body) == (201, b'{"data":[1]}')


def test_its_signature_is_the_documented_one() -> None:
    assert str(inspect.signature(JSONResponse)) == (
        "(content=None, status_code=200, headers=None, media_type=None, *, content_type=None, body=None)")
