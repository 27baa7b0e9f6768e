"""catzilla.dependency_injection: 0.2.3's named services and scopes over a real server."""
from __future__ import annotations

import pytest

from catzilla.dependency_injection import DIContainer
from compat_support import compat_client


@pytest.fixture(scope="module")
def client():
    with compat_client("di_app:app", "--threads", "4") as client:
        yield client


def test_request_scope_is_one_instance_across_the_loop_and_the_pool(client):
    first = client.get("/items/3").json()
    assert first["item"] == {"id": 3}
    assert first["same_in_handler"] and first["same_in_repository"]
    # made on the loop by the middleware, used again in the pool by the handler
    assert first["seen"][0].startswith("loop:") and first["seen"][1].startswith("pool:")
    assert first["seen"][2] == "repository"
    second = client.get("/items/4").json()
    assert second["request_ctx"] != first["request_ctx"]  # a new one per request
    assert len(second["seen"]) == 3


def test_singleton_once_per_worker_transient_every_time(client):
    bodies = [client.get(f"/items/{n}").json() for n in range(1, 6)]
    assert len({b["config"] for b in bodies}) == 1
    assert len({b["config_pid"] for b in bodies}) == 1
    stamps = [s for b in bodies for s in b["stamps"]]
    assert len(set(stamps)) == len(stamps)


def test_injected_parameters_leave_the_others_to_the_request(client):
    assert client.get("/items/0").status_code == 422  # Path(..., ge=1) still applies
    r = client.get("/async/9")
    assert r.json()["item"] == {"id": 9}
    assert {"config", "repo", "request_ctx", "stamp"} <= set(r.json()["services"])


def test_container_in_process():
    container = DIContainer()
    container.register("a", lambda: object(), scope="singleton")
    container.register("b", lambda a: ("b", a), scope="scoped")
    assert container.resolve("a") is container.resolve("a")
    with container.resolution_context():
        assert container.resolve("b") is container.resolve("b")
    with container.create_context() as one, container.create_context() as two:
        assert one.resolve("b") is not two.resolve("b")
        assert one.resolve("b")[1] is container.resolve("a")
    with pytest.raises(LookupError, match="no service named 'nope'"):
        container.resolve("nope")
    with pytest.raises(ValueError, match="unknown scope"):
        container.register("c", object, scope="session")
    child = container.create_child_container()
    assert child.resolve("a") is container.resolve("a")


def test_depends_by_name_in_handlers_and_service_constructors(client):
    r = client.get("/welcome/Ada").json()
    assert r["message"] == "Hello, Ada!" and r["same_ctx"] is True
    assert r["config"] == client.get("/items/1").json()["config"]  # the one singleton
    r = client.get("/async-welcome/Bo").json()
    assert r == {"message": "Hello, Bo!", "same_ctx": True}


def test_an_unknown_service_is_a_500_naming_it(client):
    r = client.get("/missing")
    assert r.status_code == 500
    assert "no service named 'no_such_service'" in client.server.logs()


def test_request_scoped_services_are_closed_after_the_response(client):
    first = client.get("/session").json()
    assert first["serial"] not in first["closed"]
    second = client.get("/session").json()
    assert first["serial"] in second["closed"]
