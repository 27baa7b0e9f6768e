"""One request in flight is one Exchange; a chain whose middleware only awaits `call_next`
is driven without a Task when nothing else in it can suspend."""
from __future__ import annotations

import asyncio
import gc

import pytest

from catzilla import Catzilla
from catzilla.middleware import CORSMiddleware, GZipMiddleware, RequestIDMiddleware, TrustedHostMiddleware
from catzilla.pipeline import awaits_only_call_next
from catzilla.worker.exchange import Exchange


def test_an_exchange_holds_what_both_sides_need() -> None:
    request, route = object(), object()
    exchange = Exchange(None, request, route, b"server: x\r\n", True, False, 3, 1.5)
    assert (exchange.request, exchange.route, exchange.common) == (request, route, b"server: x\r\n")
    assert (exchange.head_only, exchange.keep_alive, exchange.row, exchange.started) == (True, False, 3, 1.5)
    # Nothing owed, no Task and no pool result until the executor says so.
    assert (exchange.owed, exchange.task, exchange.response, exchange.data) == (False, None, None, None)
    exchange.owed = True
    exchange.data = b"bytes"
    assert exchange.owed is True and exchange.data == b"bytes"
    with pytest.raises(AttributeError):
        exchange.other = 1  # fixed fields only


def test_an_exchange_takes_its_fields_in_order() -> None:
    with pytest.raises(TypeError):
        Exchange(None, None, None)
    with pytest.raises(TypeError):
        Exchange(None, None, None, b"", False, True, 0, 0.0, extra=1)


def test_a_cycle_through_an_exchange_is_collected() -> None:
    class Connection:
        exchange: Exchange | None = None

    connection = Connection()
    connection.exchange = Exchange(connection, None, None, b"", False, True, 0, 0.0)
    del connection
    assert gc.collect() >= 2


@pytest.mark.parametrize("cls", [CORSMiddleware, GZipMiddleware, RequestIDMiddleware, TrustedHostMiddleware])
def test_the_built_in_middleware_awaits_only_call_next(cls: type) -> None:
    assert awaits_only_call_next(cls.dispatch.__get__(object()))


async def plain(request, call_next):
    response = await call_next(request)
    response.headers["x"] = "1"
    return response


async def sleeps(request, call_next):
    await asyncio.sleep(0)
    return await call_next(request)


async def times_out(request, call_next):
    async with asyncio.timeout(5):
        return await call_next(request)


async def awaits_an_expression(request, call_next):
    return await call_next(request.state)


def not_a_coroutine(request, call_next):
    return call_next(request)


@pytest.mark.parametrize("dispatch, inline", [
    (plain, True), (sleeps, False), (times_out, False), (awaits_an_expression, False), (not_a_coroutine, False),
])
def test_awaits_only_call_next(dispatch, inline: bool) -> None:
    assert awaits_only_call_next(dispatch) is inline


def test_a_chain_of_such_middleware_needs_no_task() -> None:
    app = Catzilla()
    app.add_middleware(CORSMiddleware, allow_origins=["https://example.com"])

    @app.before_request
    async def before(request):
        return None

    @app.get("/inline")
    async def inline(request):
        return {}

    @app.get("/suspends")
    async def suspends(request):
        await asyncio.sleep(0)
        return {}

    app.middleware("http")(times_out)

    @app.get("/other")
    async def other(request):
        return {}

    app.prepare(lambda fn, *args: None)
    by_path = {route.path: route for route in app.router.routes}
    assert by_path["/suspends"].pipeline.may_suspend
    # times_out (an `async with`) is on the app too, so every route of it needs a Task:
    assert by_path["/inline"].pipeline.may_suspend and by_path["/other"].pipeline.may_suspend

    app = Catzilla()
    app.add_middleware(CORSMiddleware, allow_origins=["https://example.com"])
    app.before_request(before)
    app.get("/inline")(inline)
    app.prepare(lambda fn, *args: None)
    assert not app.router.routes[0].pipeline.may_suspend


def test_drive_returns_what_a_coroutine_returns() -> None:
    from catzilla._native import Suspended, drive

    async def returns():
        return {"a": 1}

    async def raises():
        raise KeyError("k")

    assert drive(returns()) == {"a": 1}
    with pytest.raises(KeyError):
        drive(raises())

    async def suspends():
        await asyncio.sleep(0)
        return 2

    coroutine = suspends()
    with pytest.raises(Suspended) as caught:
        drive(coroutine)
    assert caught.value.args == (None,)  # what sleep(0) yields
    with pytest.raises(StopIteration):
        coroutine.send(None)  # left where it stopped: the caller goes on with it


def test_encode_response_is_the_formatted_bytes() -> None:
    from catzilla._native import encode_response

    for head_only in (False, True):
        assert encode_response(b"HTTP/1.1 200 OK\r\n", b"server: x\r\n", b"a: 1\r\n", b"body", b"b: 2\r\n",
                               head_only) == b"HTTP/1.1 200 OK\r\nserver: x\r\na: 1\r\ncontent-length: 4\r\nb: 2\r\n\r\n" \
            + (b"" if head_only else b"body")
    with pytest.raises(TypeError):
        encode_response(b"", b"", b"", "text", b"", False)
