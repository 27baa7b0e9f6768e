"""A chain that cannot suspend runs as one function written out for it when the app starts
(Pipeline._compile_inline): several hooks per layer, a handler with parameters, short
circuits, and CORS around responses that already carry its fields, over a real server."""
from __future__ import annotations

import sys

import httpx
import pytest

from conftest import load_test_app, run_server

TIMEOUT = 5.0
ORIGIN = {"origin": "https://a.example"}


@pytest.fixture(scope="module")
def server():
    with run_server("compiled_app:app") as s:
        yield s


def get(server, path: str, **kw) -> httpx.Response:
    return httpx.get(server.url + path, timeout=TIMEOUT, **kw)


def test_every_route_here_runs_as_one_call():
    app = load_test_app("compiled_app").app
    app.prepare(lambda fn, *args: None)
    assert all(route.pipeline.run_inline is not None for route in app.routes)


def test_hooks_run_in_layer_order_around_a_handler_with_parameters(server):
    r = get(server, "/items/7?q=x")
    assert r.json() == {"item_id": 7, "q": "x", "trace": "b1,b2,rb"}
    assert r.headers["x-after"] == "router,app"  # the innermost layer's after-hooks first
    assert r.headers["vary"] == "Origin" and "access-control-allow-origin" not in r.headers


def test_a_bad_parameter_is_answered_and_goes_out_through_the_middleware(server):
    r = get(server, "/items/seven")
    assert r.status_code == 422
    assert "x-after" not in r.headers  # an exception's answer skips the after-hooks, as in `run`
    assert r.headers["vary"] == "Origin"


def test_a_before_hook_short_circuits(server):
    r = get(server, "/items/7?short=app", headers=ORIGIN)
    assert (r.status_code, r.text) == (200, "short by app")
    assert r.headers["x-after"] == "router,app"
    assert r.headers["access-control-allow-origin"] == "https://a.example"


def test_cors_sets_its_fields_once(server):
    r = get(server, "/items/7", headers=ORIGIN)
    assert r.headers["access-control-allow-origin"] == "https://a.example"
    assert r.headers["access-control-expose-headers"] == "x-trace"
    assert r.headers["vary"] == "Origin"
    assert r.headers.get_list("access-control-allow-origin") == ["https://a.example"]


@pytest.mark.parametrize("headers", [ORIGIN, {}])
def test_cors_replaces_and_merges_fields_the_response_has(server, headers):
    r = get(server, "/own-fields", headers=headers)
    assert r.text == "own"
    assert r.headers.get_list("vary") == ["Accept, Origin"]
    if headers:
        assert r.headers.get_list("access-control-allow-origin") == ["https://a.example"]
        assert r.headers.get_list("access-control-expose-headers") == ["x-trace"]
    else:
        assert r.headers.get_list("access-control-allow-origin") == ["https://x.example"]


def test_assigning_headers_replaces_them_and_the_view_edits_the_new_list(server):
    r = get(server, "/replaced")
    assert r.headers.get_list("x-first") == ["2"] and r.headers["x-second"] == "3"
    assert r.headers["x-after"] == "router,app"


# -- plain_twin: an async def that cannot suspend, called as a plain function ----------------

def _cases():
    outer = "closed over"

    async def plain(request):
        return request

    async def defaults(a, b=2, *, c=3):
        return (a, b, c)

    async def closure(request):
        return (outer, request)

    async def raises(request):
        raise LookupError(request)

    async def cell(request):
        def inner():
            return request * 2
        return inner()

    return [(plain, (1,), {}), (defaults, (1,), {"c": 4}), (closure, ("r",), {}),
            (raises, ("boom",), {}), (cell, (21,), {})]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="twins are made from 3.11's coroutine code")
@pytest.mark.parametrize("fn, args, kwargs", _cases(), ids=lambda case: getattr(case, "__name__", ""))
def test_a_plain_twin_returns_and_raises_what_its_coroutine_does(fn, args, kwargs):
    from catzilla._native import drive
    from catzilla.pipeline import plain_twin

    twin = plain_twin(fn)
    assert twin is not None and twin.__qualname__ == fn.__qualname__

    def outcome(call):
        try:
            return ("returned", call())
        except LookupError as exc:
            return ("raised", exc.args)

    assert outcome(lambda: twin(*args, **kwargs)) == outcome(lambda: drive(fn(*args, **kwargs)))


def test_no_twin_for_what_can_suspend_or_is_not_a_coroutine_function():
    import asyncio
    import functools

    from catzilla.pipeline import plain_twin

    async def suspends(request):
        await asyncio.sleep(0)

    async def agen(request):
        yield request

    def sync(request):
        return request

    async def fine(request, extra):
        return request

    for fn in (suspends, agen, sync, functools.partial(fine, extra=1), len):
        assert plain_twin(fn) is None
