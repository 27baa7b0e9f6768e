"""0.2.3's @app.middleware(priority=, pre_route=, post_route=, name=) and request.context."""
from __future__ import annotations

import pytest

from compat_support import compat_client


@pytest.fixture(scope="module")
def client():
    with compat_client("middleware_app:app") as client:
        yield client


def test_hooks_run_by_priority_with_dict_state_and_context(client):
    body = client.get("/", headers={"x-user": "ada"}).json()
    assert body["seen"] == ["timing"] and body["user"] == "ada" and body["production"] is True
    assert [h["priority"] for h in body["stats"]] == [10, 50]
    assert client.get("/").json()["after_hooks_so_far"] >= 1  # the request-only post_route hook ran


def test_a_pre_route_hook_short_circuits_a_router_group(client):
    r = client.get("/admin/panel")
    assert (r.status_code, r.json()) == (401, {"error": "Authentication required"})
    assert client.get("/admin/panel", headers={"x-user": "root"}).json() == {"user": "root"}


def test_request_get_header(client):
    assert client.get("/agent", headers={"user-agent": "probe/1"}).json() == {"agent": "probe/1", "missing": "default"}


def test_group_and_route_middleware_lists(client):
    r = client.get("/keyed/thing")
    assert (r.status_code, r.json()) == (403, {"error": "key required"})
    assert client.get("/keyed/thing", headers={"x-key": "k"}).json() == {"tags": ["route"]}
