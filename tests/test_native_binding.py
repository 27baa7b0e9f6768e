"""ext/binding.c's PlainBinder against its Python reference (binding._plain_binder with
native=False): for hostile query strings and path segments -- percent escapes good and bad,
`+`, repeated, blank and encoded keys, bytes beyond ASCII, signs, zeros, huge numbers --
both give the same arguments, the same path_params, or the same 422 errors."""
from __future__ import annotations

import functools
import random
import typing

import pytest

from catzilla import Path, Query, Request
from catzilla._native import PlainBinder, PositionalCall
from catzilla.binding import Binding, _plain_binder
from catzilla.errors import RequestValidationError


def items(request, item_id: int, q: int = Query(10, ge=0, le=1000)): ...


def named(request, name: str, code: typing.Annotated[int, Path(gt=-1, lt=100)], tag: typing.Optional[str] = None,
          limit: typing.Optional[int] = None, page: int = Query(1, alias="p"), strict: int = Query(..., ge=1),
          text: str = Query(..., alias="t-x")): ...


def by_keyword(item_id: int, *, request: Request, word: str = "w"): ...


HANDLERS = [(items, ["item_id"]), (named, ["name", "code"]), (by_keyword, ["item_id"])]
PIECES = ["q", "p", "t-x", "tag", "limit", "strict", "word", "%71", "%70", "t%2Dx", "t+x", "=", "&", "&&", "+",
          "%", "%2", "%zz", "%2B", "%20", "%00", "%FF", "%C3%A9", "é", "€", "0", "00", "1", "7", "42", "999",
          "1000", "1001", "-1", "-0", "1e3", "1.0", "9" * 18, "9" * 19, "1" * 40, " ", "\t", "null"]
SEGMENTS = ["0", "5", "42", "007", "-1", "+1", "1.5", "abc", "", " 7", "7 ", "٣", "²", "9" * 18, "9" * 19,
            "99", "100", "café", "a/b"]


def outcome(bind: typing.Callable[[Request], typing.Any], query: str, path_params: dict[str, str]):
    request = Request("GET", "/", query)
    request.path_params = dict(path_params)
    try:
        values = bind(request)
    except RequestValidationError as exc:
        return "422", exc.errors, request.path_params
    values = {k: ("<request>" if v is request else (type(v).__name__, v)) for k, v in values.items()}
    return "ok", values, request.path_params


def binders(handler, path_names):
    binding = Binding(handler, path_names)
    assert isinstance(binding.bind, PlainBinder), handler.__name__
    reference = _plain_binder(binding.fields, binding.request_names, path_names, binding._bind_direct,
                              native=False)
    assert not isinstance(reference, PlainBinder)
    return binding.bind, reference


@pytest.mark.parametrize("handler,path_names", HANDLERS, ids=[h.__name__ for h, _ in HANDLERS])
def test_random_hostile_inputs_bind_as_the_reference(handler, path_names):
    native, reference = binders(handler, path_names)
    rng = random.Random(13)
    for _ in range(3000):
        query = "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 12)))
        path_params = {name: rng.choice(SEGMENTS) for name in path_names}
        assert outcome(native, query, path_params) == outcome(reference, query, path_params), (query, path_params)


@pytest.mark.parametrize("query", ["q=3", "q=3&q=5", "q=5&q=x", "%71=7", "q=%37", "q=+7", "q", "q=", "", "x=1&q=1000",
                                   "q=0&q=00", "q=1001", "q=" + "7" * 300, "a=" + "%41" * 200 + "&q=9"])
def test_items_queries_bind_as_the_reference(query):
    native, reference = binders(items, ["item_id"])
    assert outcome(native, query, {"item_id": "5"}) == outcome(reference, query, {"item_id": "5"})


def test_a_query_string_as_bytes_or_wide_text():
    """By hand a Request may carry the query as text beyond latin-1 (read as UTF-8)."""
    native, reference = binders(named, ["name", "code"])
    for query in ["strict=1&t-x=%E2%82%AC&tag=€", "strict=2&t-x=ü&p=3", "strict=1&t-x=" + "€" * 200]:
        params = {"name": "n", "code": "3"}
        assert outcome(native, query, params) == outcome(reference, query, params)
        assert outcome(native, query, params)[0] == "ok"


def test_a_key_beyond_ascii_stays_in_python():
    def wide_key(request, q: int = Query(1, alias="é")): ...

    bind = Binding(wide_key, []).bind
    assert not isinstance(bind, PlainBinder) and callable(bind)
    assert bind(Request("GET", "/", "%C3%A9=5&q=6")) == {"q": 5}
    assert bind(Request("GET", "/", "q=6")) == {"q": 1}


def test_refuses_descriptions_it_cannot_follow():
    general = lambda request: {}  # noqa: E731
    with pytest.raises(TypeError):
        PlainBinder(("q",), (), general)
    with pytest.raises(ValueError):
        PlainBinder((("q", False, "q", True, True, None, (("ne", 1),)),), (), general)
    with pytest.raises(ValueError):
        PlainBinder((("q", False, "q", True, True, None, (("le", 2 ** 70),)),), (), general)
    with pytest.raises(ValueError):
        PlainBinder(tuple(("q", False, "q", True, True, None, ()) for _ in range(17)), (), general)
    binder = PlainBinder((("q", False, "q", True, True, None, (("ge", 1),)),), (), general)
    with pytest.raises(TypeError):
        binder()
    with pytest.raises(TypeError):
        binder(Request("GET", "/", "q=1"), extra=1)
    assert binder(Request("GET", "/", "q=1")) == {"q": 1}
    assert binder(Request("GET", "/", "q=0")) == {}  # not within its bounds: general's


def test_a_positional_call_is_the_keyword_call():
    """PositionalCall passes the arguments positionally only when they are exactly the
    function's parameters after the request; otherwise it calls with the keywords."""
    def handler(request, a, b=2, *rest, c=3, **more):
        return request, a, b, rest, c, more

    call = Binding(handler, []).call
    assert isinstance(call, PositionalCall)
    request = Request("GET", "/")
    for kwargs in [None, {"a": 1, "b": 5}, {"b": 5, "a": 1}, {"a": 1}, {"a": 1, "c": 4}, {"a": 1, "b": 2, "z": 0},
                   {"a": 1, "b": 2, "c": 9, "z": 0}]:
        try:
            expected = handler(request) if kwargs is None else handler(request, **kwargs)
        except TypeError as exc:
            expected = str(exc)
        try:
            assert call(handler, request, kwargs) == expected, kwargs
        except TypeError as exc:
            assert str(exc) == expected, kwargs

    other = lambda request, **kwargs: ("other", kwargs)  # noqa: E731 -- not the endpoint it was made for
    assert call(other, request, {"a": 1, "b": 2}) == ("other", {"a": 1, "b": 2})
    with pytest.raises(TypeError):
        call(handler, request, [1, 2])


def test_a_decorated_handler_that_takes_keywords_is_called_with_keywords():
    """functools.wraps copies the signature (item_id, q) onto a wrapper that takes **kwargs:
    the call follows the wrapper's own code, not the signature."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(request, **kwargs):
            return fn(request, **kwargs)
        return wrapper

    @decorate
    def handler(request, item_id: int, q: int = 1):
        return item_id, q

    binding = Binding(handler, ["item_id"])
    request = Request("GET", "/", "q=3")
    request.path_params = {"item_id": "4"}
    assert binding.call(handler, request, binding.bind(request)) == (4, 3)


def test_only_plain_functions_are_called_positionally():
    class Handler:
        def __call__(self, request, q: int = 1):
            return q

    instance = Handler()
    assert not isinstance(Binding(instance, []).call, PositionalCall)
    assert Binding(instance, []).call(instance, Request("GET", "/"), {"q": 5}) == 5
    with pytest.raises(ValueError):
        PositionalCall(instance, ("a",) * 17)
    with pytest.raises(TypeError):
        PositionalCall(instance, (1,))


def _invoke_outcome(binding: Binding, invoke, handler, query: str, path_params: dict[str, str]):
    request = Request("GET", "/", query)
    request.path_params = dict(path_params)
    try:
        args = invoke(handler, request)
    except RequestValidationError as exc:
        return "422", exc.errors, request.path_params
    args = [("<request>" if v is request else (type(v).__name__, v)) for v in args]
    return "ok", args, request.path_params


def invoke_items(request, item_id: int, q: int = Query(10, ge=0, le=1000)):
    return request, item_id, q


def invoke_named(req: Request, name: str, code: typing.Annotated[int, Path(gt=-1, lt=100)],
                 tag: typing.Optional[str] = None, other: Request = None, page: int = Query(1, alias="p"),
                 strict: int = Query(..., ge=1)):
    return req, name, code, tag, other, page, strict


def invoke_without_request(q: int, item_id: int, word: str = "w"):
    return q, item_id, word


INVOKED = [(invoke_items, ["item_id"]), (invoke_named, ["name", "code"]), (invoke_without_request, ["item_id"])]


@pytest.mark.parametrize("handler,path_names", INVOKED, ids=[h.__name__ for h, _ in INVOKED])
def test_an_invoke_is_bind_then_call(handler, path_names):
    """PlainInvoke (bound and called positionally in C) against _invoke_reference (bind,
    then call with the keywords): the same arguments, the same path_params, the same 422."""
    from catzilla._native import PlainInvoke
    from catzilla.binding import _invoke_reference

    binding = Binding(handler, path_names)
    assert isinstance(binding.invoke, PlainInvoke), handler.__name__
    reference = functools.partial(_invoke_reference, binding)
    rng = random.Random(13)
    for _ in range(2000):
        query = "".join(rng.choice(PIECES + ["tag", "strict=", "q="]) for _ in range(rng.randrange(0, 12)))
        params = {name: rng.choice(SEGMENTS) for name in path_names}
        assert _invoke_outcome(binding, binding.invoke, handler, query, params) == \
            _invoke_outcome(binding, reference, handler, query, params), (query, params)
    params = {name: "5" for name in path_names}
    assert _invoke_outcome(binding, binding.invoke, handler, "q=3&strict=2", params)[0] == "ok"


def test_an_invoke_of_another_endpoint_or_an_unplain_handler_takes_the_long_way():
    from catzilla._native import PlainInvoke

    binding = Binding(invoke_items, ["item_id"])
    request = Request("GET", "/", "q=4")
    request.path_params = {"item_id": "7"}
    wrapper = lambda request, **kwargs: ("wrapped", kwargs)  # noqa: E731 -- put in the handler's place
    assert binding.invoke(wrapper, request) == ("wrapped", {"item_id": 7, "q": 4})

    def keyword_only(request, *, q: int = 1): ...

    def with_rest(request, q: int = 1, *rest): ...

    def floats(request, q: float = 1.0): ...

    assert Binding(keyword_only, []).invoke is None
    assert Binding(floats, []).invoke is None  # not a plain binder
    assert isinstance(Binding(with_rest, []).invoke, PlainInvoke)
    with pytest.raises(ValueError):
        PlainInvoke(binding.bind, invoke_items, (-1, 2), print)
    with pytest.raises(TypeError):
        PlainInvoke(print, invoke_items, (-1,), print)
    with pytest.raises(TypeError):
        binding.invoke(invoke_items)
