"""The binder compiled for plain parameters against the general one (tests/apps/plain_app.py):
for odd path segments and query strings (percent-encoding, `+`, repeated and blank keys,
leading zeros, signs, bounds, aliases, optionals, huge numbers) both answer alike: status,
values, errors, path_params. A real server, a real client."""
from __future__ import annotations

import inspect
import socket

import httpx
import pytest

from catzilla import Query, Request
from catzilla.binding import Binding
from conftest import load_test_app, read_response, run_server

SEGMENTS = ["42", "0", "-0", "-7", "007", "+7", "1.0", "1e3", "abc", "4_2", "%20", "%207", "42%20",
            "%D9%A3", "99", "100", "-1", "1" * 18, "1" * 19, "9" * 30, "%2F", "4%2F2", "%0A",
            "42%0A", "%00", "%FF", "caf%C3%A9", "a+b", "%2B1"]
QUERIES = ["", "q=3", "q=", "q", "q=3&q=5", "q=5&q=x", "q=x&q=5", "q=+3", "q=3+", "q=%33", "%71=4",
           "q=1001", "q=1000", "q=0", "q=-1", "q=00", "q=1.0", "q=abc", "&&q=2&&", "x=1", "q=%2B3",
           "q=3&p=2&strict=1", "strict=1", "strict=0", "strict=1&p=", "strict=1&p=07",
           "strict=1&tag=&limit=", "strict=1&tag=a+b%26c&limit=5", "strict=1&limit=null",
           "strict=1&p=2&p=x", "strict=5&code=9", "strict=1&name=zz", "strict=1&limit=-3",
           "strict=" + "1" * 25]


@pytest.fixture(scope="module")
def server():
    with run_server("plain_app:app", "--workers", "1") as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10.0) as c:
        yield c


def raw_get(server, target: str) -> tuple[int, bytes]:
    """The target exactly as written (httpx would normalise some of them)."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        status, _, body = read_response(sock)
    return status, body


def answers(server, target: str) -> tuple[int, bytes]:
    status, body = raw_get(server, target)
    assert status in (200, 404, 422), (target, status, body)
    return status, body


@pytest.mark.parametrize("segment", SEGMENTS)
def test_items_path_parameter_as_the_general_path(server, segment):
    fast = answers(server, f"/fast/items/{segment}?q=3")
    slow = answers(server, f"/slow/items/{segment}?q=3")
    assert fast == slow, (segment, fast, slow)


@pytest.mark.parametrize("query", QUERIES)
def test_items_query_as_the_general_path(server, query):
    fast = answers(server, f"/fast/items/5?{query}")
    slow = answers(server, f"/slow/items/5?{query}")
    assert fast == slow, (query, fast, slow)


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("segments", ["n/42", "n/0", "a%20b/99", "n/100", "n/-1", "n/07", "%2F/1", "n/x"])
def test_aliases_optionals_and_bounds_as_the_general_path(server, segments, query):
    fast = answers(server, f"/fast/named/{segments}/end?{query}")
    slow = answers(server, f"/slow/named/{segments}/end?{query}")
    assert fast == slow, (segments, query, fast, slow)


def test_the_values_and_their_types(client):
    r = client.get("/fast/items/42", params={"q": "7"})
    assert r.json() == {"values": {"item_id": 42, "q": 7}, "types": {"item_id": "int", "q": "int"},
                        "path_params": {"item_id": 42}}
    r = client.get("/fast/named/caf%C3%A9/5/end", params=[("strict", "2"), ("p", "3"), ("tag", "a b")])
    assert r.json()["values"] == {"name": "café", "code": 5, "tag": "a b", "limit": None, "page": 3,
                                  "strict": 2}
    r = client.get("/fast/items/1.0", params={"q": "1e3"})  # msgspec's lax reading, as before
    assert r.json()["values"] == {"item_id": 1, "q": 1000}


def test_errors_are_the_general_ones(client):
    r = client.get("/fast/items/007", params={"q": "2000"})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["path", "item_id"], ["query", "q"]]
    assert r.json() == client.get("/slow/items/007", params={"q": "2000"}).json()
    r = client.get("/fast/named/n/5/end")
    assert r.status_code == 422
    assert r.json()["detail"] == [{"type": "missing", "loc": ["query", "strict"], "msg": "Field required",
                                   "input": None}]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("segment", ["42", "007", "-1", "1.0", "abc", "%D9%A3", "9" * 30])
def test_async_handlers_bound_and_called_at_once_as_the_general_path(server, segment, query):
    """Inline `async def` handlers go through PlainInvoke (ext/binding.c): the same answers,
    422s included, as the general binder's."""
    fast = answers(server, f"/afast/items/{segment}?{query}")
    slow = answers(server, f"/aslow/items/{segment}?{query}")
    assert fast == slow, (segment, query, fast, slow)
    fast = answers(server, f"/afast/named/n/{segment}/end?{query}")
    slow = answers(server, f"/aslow/named/n/{segment}/end?{query}")
    assert fast == slow, (segment, query, fast, slow)


def test_async_handlers_under_limit_concurrency_bind_alike():
    """With --limit-concurrency the protocol hands every request to Executor.start, whose
    own PlainInvoke branch then binds and calls: the same answers as the general binder."""
    with run_server("plain_app:app", "--workers", "1", "--limit-concurrency", "8") as limited:
        for target in ["/items/42?q=3", "/items/007?q=2000", "/items/5?q=x&q=4", "/named/n/5/end?strict=1&p=2",
                       "/named/n/5/end", "/named/n/x/end?strict=0"]:
            fast = answers(limited, "/afast" + target)
            slow = answers(limited, "/aslow" + target)
            assert fast == slow, (target, fast, slow)
        assert answers(limited, "/afast/items/42?q=3")[0] == 200


def test_the_async_twins_are_invoked_as_intended():
    from catzilla._native import PlainInvoke

    app = load_test_app("plain_app").app
    invoked = {route.path: isinstance(route.binding.invoke, PlainInvoke) for route in app.router.routes
               if route.path.startswith(("/afast/", "/aslow/"))}
    assert invoked == {"/afast/items/{item_id}": True, "/aslow/items/{item_id:str}": False,
                       "/afast/named/{name}/{code}/end": True, "/aslow/named/{name:str}/{code:str}/end": False}


def compiled_binder(binding: Binding) -> bool:
    return not inspect.ismethod(binding.bind)  # not Binding._bind_direct nor _bind_each


def test_which_handlers_get_the_compiled_binder():
    app = load_test_app("plain_app").app
    compiled = {route.path: compiled_binder(route.binding) for route in app.router.routes
                if route.path.startswith(("/fast/", "/slow/"))}
    assert compiled == {"/fast/items/{item_id}": True, "/slow/items/{item_id:str}": False,
                        "/fast/named/{name}/{code}/end": True, "/slow/named/{name:str}/{code:str}/end": False}

    def plain(request, a: int, b: str = "x", c: int = Query(0, ge=-5, lt=9)): ...

    def decimal(request, a: float): ...

    def patterned(request, b: str = Query("x", pattern="^x")): ...

    def multiple(request, c: int = Query(0, multiple_of=2)): ...

    def listed(request, c: list[int] = Query([])): ...

    def flag(request, c: bool = False): ...

    for handler, expected in ((plain, True), (decimal, False), (patterned, False), (multiple, False),
                              (listed, False), (flag, False)):
        binding = Binding(handler, ["a"] if handler in (plain, decimal) else [])
        assert compiled_binder(binding) is expected, handler.__name__


def test_a_path_value_bound_already_binds_again():
    """The CPU lane binds a request whose path_params the worker has converted already."""
    def handler(request, n: int, name: str, q: int = 1): ...

    binding = Binding(handler, ["n", "name"])
    assert compiled_binder(binding)
    request = Request("GET", "/x/3/a", "q=2")
    request.path_params = {"n": "3", "name": "a"}
    first = binding.bind(request)
    assert first == {"n": 3, "name": "a", "q": 2} and request.path_params == {"n": 3, "name": "a"}
    assert binding.bind(request) == first
