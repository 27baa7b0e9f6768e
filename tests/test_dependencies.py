"""Annotated markers, pydantic bodies, Depends and the decorator keywords (issue 9, items 1-3),
through the TestClient (the real protocol, router, executor and pool in memory) with
deps_app; registration errors in-process and through a real server that must refuse to
start."""

import subprocess
import sys
import textwrap
import time
from typing import Annotated, Optional

import httpx
import msgspec
import pytest

from catzilla import Catzilla, Depends, Header, Path, Query
from catzilla.errors import DefinitionError
from conftest import ROOT, app_client, run_server

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def client():
    with app_client("deps_app:app", threads=4) as c:
        yield c


@pytest.fixture(scope="module")
def wire():
    """A real server, for the smoke test of the server path."""
    with run_server("deps_app:app", "--workers", "1", "--threads", "4") as server:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
            yield c


def events_of(client):
    client.post("/events/reset")

    def read() -> dict:
        return client.get("/events").json()

    return read


@pytest.fixture
def events(client):
    return events_of(client)


# --- Annotated ------------------------------------------------------------------------------

def test_annotated_query_constraint_has_fastapis_message(client):
    r = client.get("/ann/query", params={"n": 1})
    assert r.status_code == 422
    assert r.json() == {"detail": [{
        "type": "greater_than_equal", "loc": ["query", "n"], "msg": "Input should be greater than or equal to 2",
        "input": "1", "ctx": {"ge": 2}}]}
    assert client.get("/ann/query", params={"n": 2}).json() == {"n": 2, "q": "abc"}


def test_annotated_errors_are_all_listed(client):
    r = client.get("/ann/query", params={"n": "x", "q": "long"})
    assert r.status_code == 422
    assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
        ("int_parsing", ["query", "n"]), ("string_too_long", ["query", "q"])]
    assert r.json()["detail"][1]["msg"] == "String should have at most 3 characters"


def test_annotated_header_is_read_from_headers_not_the_query(client):
    r = client.get("/ann/header", params={"x_token": "from-query", "x-token": "q"})
    assert r.status_code == 422
    assert r.json()["detail"] == [{"type": "missing", "loc": ["header", "x-token"], "msg": "Field required",
                                   "input": None}]
    r = client.get("/ann/header", headers={"X-Token": "abc", "User-Agent": "tester"})
    assert r.json() == {"x_token": "abc", "user_agent": "tester"}


def test_annotated_cookie(client):
    assert client.get("/ann/cookie").json() == {"session": None, "theme": "light"}
    r = client.get("/ann/cookie", headers={"Cookie": "session=s1; ui-theme=dark"})
    assert r.json() == {"session": "s1", "theme": "dark"}


def test_annotated_path_constraint(client):
    assert client.get("/ann/path/5").json() == {"item_id": 5}
    r = client.get("/ann/path/0")
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "Input should be greater than 0"
    assert r.json()["detail"][0]["loc"] == ["path", "item_id"]


# --- pydantic -------------------------------------------------------------------------------

def test_pydantic_body_valid(client):
    r = client.post("/pydantic/item", json={"name": "pen", "price": 1.5, "quantity": 4})
    assert r.status_code == 200
    assert r.json() == {"name": "pen", "total": 6.0}


def test_pydantic_body_with_three_errors_is_one_422(client):
    r = client.post("/pydantic/item", json={"name": "p", "price": 0})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [(e["type"], e["loc"]) for e in detail] == [
        ("string_too_short", ["body", "name"]), ("greater_than", ["body", "price"]),
        ("missing", ["body", "quantity"])]
    assert detail[0]["msg"] == "String should have at least 2 characters"
    assert detail[1] == {"type": "greater_than", "loc": ["body", "price"], "msg": "Input should be greater than 0",
                         "input": 0, "ctx": {"gt": 0.0}}


def test_pydantic_list_body(client):
    r = client.post("/pydantic/items", json=[{"name": "ab", "price": 1, "quantity": 1}] * 2)
    assert r.json() == {"count": 2, "names": ["ab", "ab"]}
    r = client.post("/pydantic/items", json=[{"name": "ab", "price": 1, "quantity": 1}, {"name": "ab"}])
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", 1, "price"], ["body", 1, "quantity"]]


def test_pydantic_body_invalid_json_and_missing(client):
    r = client.post("/pydantic/item", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"
    r = client.post("/pydantic/item")
    assert r.json()["detail"] == [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]


def test_pydantic_embedded_body(client):
    r = client.post("/pydantic/embedded", json={"item": {"name": "ab", "price": 2, "quantity": 1}, "note": "n"})
    assert r.json() == {"name": "ab", "note": "n"}
    r = client.post("/pydantic/embedded", json={"item": {"name": "ab", "price": -1, "quantity": 1}})
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "item", "price"]]


# --- dependencies ---------------------------------------------------------------------------

def test_dependency_with_query_parameters(client):
    assert client.get("/deps/common", params={"q": "x", "skip": 2}).json() == {"q": "x", "skip": 2, "limit": 10}


def test_class_dependency(client):
    assert client.get("/deps/class", params={"page": 3}).json() == {"page": 3, "size": 20}


def test_dependency_parameters_and_handler_errors_in_one_422(client):
    r = client.get("/deps/errors", params={"limit": 1000, "skip": "x"})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["query", "skip"], ["query", "limit"], ["query", "n"]]


def test_cached_once_per_request_unless_use_cache_false(client, events):
    r = client.get("/deps/cached", headers={"x-user": "ann"})
    assert r.json() == {"user": "ann", "both": "ann@db", "fresh": "db"}
    # counted_user: once (cached); counted_db: once cached + once for use_cache=False
    assert events()["calls"] == {"user": 1, "db": 2}
    client.get("/deps/cached")
    assert events()["calls"] == {"user": 2, "db": 4}


@pytest.mark.parametrize("via", ["wire", "client"])
def test_sync_dependencies_handler_and_cleanup_share_one_pool_job(request, via):
    client = request.getfixturevalue(via)
    events = events_of(client)
    loop = client.get("/loop-thread").json()["thread"]
    for _ in range(5):
        body = client.get("/deps/threads").json()
        assert set(body["deps"]) == {body["handler"]}, body
        assert body["handler"] != loop
    assert events()["events"] == ["thread_gen cleaned up in same"] * 5


def test_yield_dependency_cleans_up_after_the_handler(client, events):
    assert client.get("/yield/sync").json() == {"session": "session"}
    assert events()["events"] == ["session open", "handler", "session closed"]


def test_async_and_sync_yield_dependencies_unwind_in_reverse(client, events):
    assert client.get("/yield/async").json() == {"sessions": ["async-session", "session"]}
    assert events()["events"] == ["async session open", "session open", "handler", "session closed",
                                  "async session closed"]


def test_handler_exception_is_thrown_into_the_generator(client, events):
    r = client.get("/yield/handler-raises")
    assert (r.status_code, r.json()) == (409, {"detail": "conflict in handler"})
    assert events()["events"] == ["session open", "session saw HTTPException",
                                  "session closed"]
    r = client.get("/yield/handler-crashes")
    assert (r.status_code, r.json()) == (500, {"detail": "Internal Server Error"})


def test_cleanup_that_raises_is_logged_and_answered_500(client, events):
    r = client.get("/yield/cleanup-raises")
    assert (r.status_code, r.json()) == (500, {"detail": "Internal Server Error"})
    assert events()["events"] == ["handler", "broken cleanup ran"]
    logs = client.logs()
    assert "the clean-up of dependency broken_cleanup raised RuntimeError: clean-up failed" in logs
    assert "RuntimeError: clean-up failed" in logs
    assert client.get("/yield/sync").status_code == 200  # the worker serves on


def test_dependency_raising_http_exception_keeps_status_and_headers(client):
    r = client.get("/deps/forbidden")
    assert (r.status_code, r.json(), r.headers["x-why"]) == (403, {"detail": "bad key"}, "key")
    assert client.get("/deps/forbidden", headers={"x-key": "secret"}).json() == {"key": "secret"}


def test_dependency_that_crashes_is_a_logged_500(client):
    r = client.get("/deps/crash")
    assert (r.status_code, r.json()) == (500, {"detail": "Internal Server Error"})
    assert "ZeroDivisionError: dependency crashed" in client.logs()


def test_async_dependency_around_def_handler_and_back(client):
    assert client.get("/deps/mixed-sync").json() == {"a": "async", "same_thread": True}
    assert client.get("/deps/mixed-async").json() == {"a": "async", "pool": True}


def test_app_router_and_decorator_dependencies(client, events):
    r = client.get("/router/item")
    assert r.json() == {"app_dependency": True}
    assert events()["events"] == ["router dependency", "decorator dependency", "handler"]
    r = client.get("/router/item", headers={"x-router": "deny"})
    assert (r.status_code, r.json()) == (401, {"detail": "router said no"})


def test_service_dependency_without_and_with_a_resolver(client):
    r = client.get("/service")
    assert r.status_code == 500
    # catzilla.dependency_injection installs the container's resolver when catzilla is
    # imported: the error names the service the container does not have.
    assert "no service named 'database' is registered" in client.logs()
    client.post("/service/install")
    assert client.get("/service").json() == {"db": "service:database"}


# --- decorator keywords ---------------------------------------------------------------------

def test_response_model_filters_a_secret_field(client):
    assert client.get("/shape/model").json() == {"name": "ann", "email": "ann@example.com"}


def test_return_annotation_shapes_from_attributes(client):
    assert client.get("/shape/annotation").json() == {"name": "bob", "email": "bob@example.com"}


def test_response_model_list_and_pydantic(client):
    assert client.get("/shape/list").json() == [{"name": "a", "email": "a@x"}, {"name": "b", "email": "b@x"}]
    assert client.get("/shape/pydantic").json() == {"name": "carol"}


def test_result_not_fitting_its_model_is_500(client):
    r = client.get("/shape/wrong")
    assert (r.status_code, r.json()) == (500, {"detail": "Internal Server Error"})
    assert "does not fit its response model" in client.logs()


def test_a_returned_response_is_sent_as_is(client):
    r = client.get("/shape/response-passes")
    assert (r.status_code, r.json()) == (202, {"anything": True})


def test_status_code_201_and_204(client):
    r = client.post("/created", json={"a": 1})
    assert (r.status_code, r.json()) == (201, {"created": {"a": 1}})
    r = client.delete("/gone")
    assert (r.status_code, r.content) == (204, b"")
    assert "content-length" not in r.headers


def test_response_class(client):
    r = client.get("/html")
    assert r.headers["content-type"].startswith("text/html")
    assert r.text == "<p>hi</p>"


def test_decorator_keywords_are_stored_on_the_route(client):
    from conftest import load_test_app

    app = load_test_app("deps_app").app
    route = next(r for r in app.routes if r.path == "/created")
    assert (route.status_code, route.tags, route.summary, route.description) == (201, ["items"], "Create", "Makes one.")
    assert (route.responses, route.deprecated, route.include_in_schema, route.name, route.cpu_bound) == (
        {409: {"description": "exists"}}, True, False, "create_item", True)
    query = next(r for r in app.routes if r.path == "/ann/query")
    n = query.binding.fields[0]
    assert (n.name, n.source, n.key, n.annotation, n.default, n.constraints) == ("n", "query", "n", int, ..., {"ge": 2})
    shaped = next(r for r in app.routes if r.path == "/shape/annotation")
    assert shaped.response_model.__name__ == "UserOut"


def test_routes_without_plans_keep_the_direct_path():
    from loadtests.bench_app import app

    for route in app.routes:
        assert route.plan is None
    app.prepare(None)
    assert all(route.pipeline is None for route in app.routes)


# --- registration errors --------------------------------------------------------------------

class Opaque:
    pass


def test_undecidable_parameter_is_an_error_at_registration():
    app = Catzilla()
    with pytest.raises(DefinitionError, match=r"parameter 'thing' of '[^']*handler'.*msgspec cannot validate.*Opaque"):
        @app.get("/x")
        def handler(request, thing: Opaque):
            return {}


def test_body_type_as_query_is_an_error_at_registration():
    app = Catzilla()
    with pytest.raises(DefinitionError, match=r"parameter 'data' of '[^']*handler'.*not a single value"):
        @app.get("/x")
        def handler(data: Annotated[dict, Query()]):
            return {}


def test_unvalidatable_body_and_constraint_errors_at_registration():
    app = Catzilla()

    class Wrapper(msgspec.Struct):
        inner: Opaque

    with pytest.raises(DefinitionError, match=r"parameter 'payload' of '[^']*bad_body'.*Opaque"):
        @app.post("/x")
        def bad_body(payload: Wrapper):
            return {}
    with pytest.raises(DefinitionError, match=r"parameter 'q' of '[^']*bad_constraint'.*Can only set `ge` on a numeric type"):
        @app.get("/y")
        def bad_constraint(q: Annotated[str, Query(ge=3)]):
            return {}


def test_marker_mistakes_are_errors_at_registration():
    app = Catzilla()
    with pytest.raises(DefinitionError, match="default inside Annotated"):
        @app.get("/a")
        def default_inside(q: Annotated[int, Query(3)]):
            return {}
    with pytest.raises(DefinitionError, match="both in Annotated and as its default"):
        @app.get("/b")
        def twice(q: Annotated[int, Query()] = Query(3)):
            return {}
    with pytest.raises(DefinitionError, match=r"'other' of '[^']*no_segment'.*no \{other\}"):
        @app.get("/c")
        def no_segment(item_id: Annotated[int, Header()], other: Annotated[int, Path()]):
            return {}


def test_dependency_errors_at_registration():
    app = Catzilla()

    def needs_opaque(thing: Opaque):
        return thing

    with pytest.raises(DefinitionError, match=r"parameter 'thing' of '.*needs_opaque'"):
        @app.get("/a")
        def uses(value=Depends(needs_opaque)):
            return {}

    def a(x=Depends(lambda: None)):
        return x

    def cyclic(value=Depends(lambda: None)):
        return value

    def first(value=Depends(cyclic)):
        return value
    cyclic.__defaults__ = (Depends(first),)
    with pytest.raises(DefinitionError, match="dependency cycle"):
        @app.get("/b")
        def loops(value=Depends(first)):
            return {}
    with pytest.raises(DefinitionError, match="takes Depends"):
        app.add_route("/c", lambda: {}, dependencies=[a])
    with pytest.raises(TypeError, match="unknown route options: bogus"):
        app.add_route("/d", lambda: {}, bogus=1)


def test_a_server_refuses_to_start_an_app_with_a_bad_parameter(tmp_path):
    (tmp_path / "bad_app.py").write_text(textwrap.dedent("""
        from catzilla import Catzilla

        class Opaque:
            pass

        app = Catzilla()

        @app.get("/")
        def index(request, thing: Opaque):
            return {}
    """))
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "catzilla", "run", "bad_app:app", "--port", "0"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "parameter 'thing' of 'index' (bad_app.py:9)" in result.stderr + result.stdout


def test_header_dependency_from_annotated_in_process():
    app = Catzilla()

    def token(x_token: Annotated[Optional[str], Header()] = None):
        return x_token

    @app.get("/t")
    def handler(t: Annotated[Optional[str], Depends(token)]):
        return {"t": t}

    (route,) = [r for r in app.routes if r.path == "/t"]
    (node,) = route.plan.nodes
    assert [(f.name, f.source, f.key) for f in node.binding.fields] == [("x_token", "header", "x-token")]


# --- inside a chain (hooks around the route) ---------------------------------------------------

def test_in_a_chain_def_hook_dependencies_handler_share_one_job(client, events):
    body = client.get("/chained/threads").json()
    assert len(set(body["threads"])) == 1, body
    assert events()["events"] == ["hook", "session open", "session closed"]


def test_in_a_chain_async_dependencies_around_a_def_handler(client, events):
    assert client.get("/chained/mixed").json() == {"a": "async", "s": "async-session"}
    assert events()["events"] == ["hook", "async session open", "handler", "async session closed"]


def test_in_a_chain_dependency_errors_and_status_code(client):
    assert client.get("/chained/forbidden").status_code == 403
    r = client.get("/chained/forbidden", headers={"x-key": "secret"})
    assert (r.status_code, r.json()) == (202, {"key": "secret"})


def test_compiled_plans_and_where_they_run():
    from conftest import load_test_app

    app = load_test_app("deps_app").app
    routes = {r.path: r for r in app.routes}
    cached = routes["/deps/cached"].plan
    assert cached.one_job and "v3 = c3(user=v1, db=v2)" in cached.run_job.__source__
    assert not hasattr(routes["/yield/sync"].plan.run_job, "__source__")  # clean-ups: the general path
    assert "v0 = await c0(**bound[0])" in routes["/ann/query"].plan.run.__source__
    assert not routes["/deps/mixed-sync"].plan.one_job
    assert routes["/yield/sync"].plan.has_exits


def test_validation_errors_read_as_in_fastapi_and_catzilla():
    from catzilla import RequestValidationError

    exc = RequestValidationError([{"type": "missing", "loc": ["query", "n"]}])
    assert exc.errors() == exc.errors == [{"type": "missing", "loc": ["query", "n"]}]


def test_a_request_that_times_out_still_runs_the_clean_up(client, events):
    r = client.get("/yield/timeout")
    assert r.status_code == 504
    deadline = time.monotonic() + 5
    while "slow session closed" not in events()["events"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events()["events"] == ["slow session open", "slow session closed"]
