"""Routers, middleware, hooks and exception handlers in layers: through the TestClient (the
real protocol, executor and pool in memory), and the structured example over a real server."""
from __future__ import annotations

import time

import httpx
import pytest

from catzilla.config import Config
from conftest import app_client, run_server

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def client():
    # the server's blocked-loop detector, as `catzilla run` has it by default
    with app_client("structure_app:app", threads=4, loop_block_threshold=Config().loop_block_threshold) as client:
        yield client


def test_middleware_and_hooks_nest_app_router_route_on_a_sync_route(client):
    r = client.get("/api/sync")
    assert r.status_code == 200
    trail = r.json()["trail"]
    # app middleware (outermost first), router middleware, async hooks on the loop, then the
    # def hooks and the def handler in one pool job (the same thread).
    assert trail[:4] == ["fn>", "app-outer>", "app-inner>", "router>"]
    assert trail[4] == "app-before"
    assert trail[5].startswith("router-before@") and trail[6] == "route-hook"
    assert trail[7].startswith("handler@")
    assert trail[5].split("@")[1] == trail[7].split("@")[1]  # same pool thread
    assert r.headers["x-after"].endswith("router-after app-after")
    assert r.headers["x-trail"].endswith("<router <app-inner <app-outer")
    assert r.headers["x-fn"] == "1"


def test_async_route_through_nested_routers(client):
    r = client.get("/api/async/7")
    assert r.json()["item"] == 7
    assert r.json()["trail"][:5] == ["fn>", "app-outer>", "app-inner>", "router>", "app-before"]
    r = client.get("/api/inner/ping")
    assert r.status_code == 200 and "router>" in r.json()["trail"]


def test_a_before_hook_short_circuits_a_sync_route(client):
    r = client.get("/api/sync", headers={"x-deny": "router"})
    assert (r.status_code, r.text) == (401, "denied by router")
    assert "handler" not in r.headers["x-after"]  # the after hooks still ran, the handler not
    r = client.get("/api/sync", headers={"x-deny": "app"})
    assert r.status_code == 403 and r.json() == {"denied": "by app"}


def test_exception_handlers_by_class_along_the_mro_in_the_pool(client):
    r = client.get("/api/teapot")
    assert r.status_code == 418 and r.json()["teapot"] == "short and stout"
    assert r.json()["thread"].startswith("catzilla-pool")  # a def exception handler runs in the pool
    assert client.get("/api/teapot-sync").status_code == 418


def test_status_code_handlers_and_custom_404_405(client):
    r = client.get("/http-error")
    assert (r.status_code, r.text) == (409, "custom conflict")
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json() == {"custom": "not here", "path": "/nowhere"}
    assert r.headers["x-fn"] == "1"  # app middleware sees unmatched requests
    r = client.post("/api/sync")
    assert r.status_code == 405 and r.json()["custom"] == "wrong method" and "GET" in r.json()["allow"]


def test_an_unhandled_exception_is_a_500_and_the_worker_lives(client):
    r = client.get("/crash")
    assert r.status_code == 500 and r.json() == {"detail": "Internal Server Error"}
    assert client.get("/api/async/1").status_code == 200


def test_a_failing_exception_handler_gives_the_plain_500_and_logs_both(client):
    r = client.get("/broken-handler")
    assert r.status_code == 500 and r.json() == {"detail": "Internal Server Error"}
    logs = client.logs()
    assert "the handler fails too" in logs and "first failure" in logs


def test_options_routes_register(client):
    r = client.options("/preflight")
    assert (r.status_code, r.text) == (200, "options")


def test_url_path_for_and_names():
    from conftest import load_test_app

    structure_app = load_test_app("structure_app")

    assert structure_app.app.url_path_for("api-item", item=5) == "/api/async/5"
    assert structure_app.app.url_path_for("api-sync") == "/api/sync"
    with pytest.raises(LookupError):
        structure_app.app.url_path_for("api-item")


def test_router_prefixes_are_checked():
    from catzilla import APIRouter

    with pytest.raises(ValueError):
        APIRouter(prefix="/trailing/")
    with pytest.raises(ValueError):
        APIRouter(prefix="no-slash")


def test_a_chain_that_suspends_goes_on_in_a_task_and_times_out_like_any(client):
    r = client.get("/sleepy")
    assert r.status_code == 200 and r.json()["trail"][-1] == "slept"
    assert r.headers["x-fn"] == "1" and r.headers["x-after"].endswith("app-after")
    r = client.get("/sleepy", params={"seconds": 5})
    assert r.status_code == 504
    assert client.get("/sleepy").status_code == 200


def test_catzilla_023_middleware_hooks_run_by_priority(client):
    r = client.get("/legacy/order")
    trail = r.json()["trail"]
    assert trail[trail.index("app-before"):] == ["app-before", "p10", "p90", "handler"]
    assert r.headers["x-post"] == "1"
    r = client.get("/legacy/order", headers={"x-deny": "legacy"})
    assert r.status_code == 429 and r.json() == {"denied": "p10"} and r.headers["x-post"] == "1"


def test_catzilla_023_exception_handler_setters():
    with app_client("structure_app:legacy_app") as client:
        assert client.get("/nope").json() == {"missing": "/nope"}
        r = client.get("/boom")
        assert r.status_code == 500 and r.json() == {"oops": True}
        r = client.get("/teapot")
        assert r.status_code == 418 and r.json() == {"tea": "legacy"}


def test_constructor_middleware_and_exception_handlers():
    from catzilla import Catzilla
    from catzilla.middleware import Middleware
    from catzilla.middleware.request_id import RequestIDMiddleware

    def handler(request, exc):
        return None

    app = Catzilla(middleware=[Middleware(RequestIDMiddleware)], exception_handlers={KeyError: handler})
    assert isinstance(app.layer.middleware[0], RequestIDMiddleware)
    assert app.layer.exception_handlers[KeyError] is handler
    with pytest.raises(TypeError, match="bogus"):
        Catzilla(bogus=1)


def test_the_structured_example_app():
    with run_server("structured:app", "--workers", "1") as server:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            assert client.get("/").json() == {"item": "/api/items/apple"}
            r = client.get("/api/items/apple", headers={"origin": "https://shop.example"})
            assert r.json()["stock"] == 3 and len(r.json()["request_id"]) == 32
            assert r.headers["access-control-allow-origin"] == "https://shop.example"
            assert r.headers["x-request-id"] == r.json()["request_id"] and "server-timing" in r.headers
            assert client.post("/api/items/apple/buy").status_code == 401
            r = client.post("/api/items/apple/buy", headers={"x-api-key": "secret"})
            assert r.json() == {"name": "apple", "left": 2}
            r = client.post("/api/items/pear/buy", headers={"x-api-key": "secret"})
            assert r.status_code == 409 and r.json() == {"detail": "pear is out of stock"}
            assert client.get("/api/items/plum").json() == {"detail": "nothing at /api/items/plum"}
            assert client.get("/nowhere").json() == {"detail": "nothing at /nowhere"}
            raw = httpx.get(server.url + "/api/items/", headers={"accept-encoding": "gzip"}, timeout=TIMEOUT)
            assert raw.headers["content-encoding"] == "gzip" and b"apple: 2" in raw.content
            r = client.options("/api/items/apple", headers={
                "origin": "https://shop.example", "access-control-request-method": "POST"})
            assert r.status_code == 200 and "POST" in r.headers["access-control-allow-methods"]


def test_the_blocked_loop_detector_names_a_hook(client):
    assert client.get("/blocking/route", headers={"x-block": "1"}).status_code == 200
    deadline = time.monotonic() + 5
    while "hook blocking_hook for GET /blocking/route has blocked the event loop" not in client.logs():
        assert time.monotonic() < deadline, client.logs()[-2000:]
        time.sleep(0.1)
