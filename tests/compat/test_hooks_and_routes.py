"""Catzilla 0.2.3 apps declare a route twice and call asyncio.run() in `def` hooks around
`async def` handlers: both must work over a real server as they did there."""
from __future__ import annotations

import pytest

from compat_support import compat_client


@pytest.fixture(scope="module")
def client():
    with compat_client("hooks_app:app", "--threads", "4") as client:
        yield client


@pytest.mark.parametrize("path", ["/async", "/inline", "/sync"])
def test_def_hooks_may_run_a_coroutine_with_asyncio_run(client, path):
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.json()["looked_up"] == path
    assert r.headers["x-after"] == "stamped"  # the def post-route hook ran too


def test_def_hooks_around_an_async_handler_run_in_the_pool_not_on_the_loop(client):
    body = client.get("/async").json()
    assert body["hook_thread"] != body["loop_thread"]
    assert body["loop_thread"] == "MainThread"


def test_a_def_hook_short_circuits_around_an_async_handler(client):
    refused = client.get("/guarded")
    assert (refused.status_code, refused.json()) == (401, {"error": "token required"})
    assert refused.headers["x-after"] == "stamped"
    assert client.get("/guarded", headers={"x-token": "yes"}).json() == {"ok": True}


def test_unmatched_requests_pass_the_def_before_hooks_in_the_pool_too(client):
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_a_route_declared_twice_answers_with_the_last_declaration(client):
    assert client.get("/twice").json() == {"which": "second"}
    head = client.head("/twice")
    assert head.status_code == 200 and head.content == b""
    # a RouterGroup included after the app's own route replaces it (0.2.3's basic_middleware)
    assert client.get("/api/data").json() == {"which": "group"}


def test_the_second_declaration_is_logged_as_a_warning(client):
    client.get("/twice")
    log = client.server.logs()
    assert "route GET /twice registered again" in log and "the last registration wins" in log
    assert "route GET /api/data registered again" in log
