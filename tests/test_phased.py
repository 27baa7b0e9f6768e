"""Middleware in two halves (PhasedMiddleware, as the built-in ones are) around hooks and a
handler that never suspend runs as one plain call; around ones that do, as a Task. Both
must give the same answers: order across app, router and route, short-circuits, exception
handlers, failures, context variables, CORS. Each case is asked of /inline (one call) and
/suspends (a Task) and the two answers compared."""
from __future__ import annotations

import time

import httpx
import pytest

from conftest import load_test_app, read_response, run_server

TIMEOUT = 5.0
ORIGIN = {"origin": "https://a.example"}
SHOWN = ("x-", "access-control-", "vary")


@pytest.fixture(scope="module")
def server():
    with run_server("phased_app:app") as s:
        yield s


def both(server, query: str = "", headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    """(status, body, the chain's headers) of /inline, after checking /suspends says the same."""
    answers = []
    for path in ("/inline", "/suspends"):
        r = httpx.get(server.url + path + query, headers=headers, timeout=TIMEOUT)
        answers.append((r.status_code, r.text, {k: v for k, v in r.headers.items() if k.startswith(SHOWN)}))
    assert answers[0] == answers[1]
    return answers[0]


def test_the_chains_compile_as_expected():
    app = load_test_app("phased_app").app
    app.prepare(lambda fn, *args: None)
    pipelines = {route.path: route.pipeline for route in app.routes}
    assert pipelines["/inline"].run_inline is not None
    assert pipelines["/suspends"].run_inline is None
    own = load_test_app("phased_app").own
    own.prepare(lambda fn, *args: None)
    assert own.routes[-1].pipeline.run_inline is None  # a subclass with its own dispatch


def test_layers_nest_app_router_route(server):
    status, body, headers = both(server, headers=ORIGIN)
    assert status == 200 and '"order":">app>router>route"' in body
    assert headers["x-order"] == "<route<router<app"
    assert headers["access-control-allow-origin"] == "https://a.example"
    assert headers["access-control-allow-credentials"] == "true" and headers["vary"] == "Origin"


def test_without_origin_only_vary(server):
    status, _, headers = both(server)
    assert status == 200 and headers["vary"] == "Origin"
    assert not any(name.startswith("access-control-") for name in headers)


def test_a_middleware_answering_is_seen_by_the_outer_ones_only(server):
    status, body, headers = both(server, "?answer=router", ORIGIN)
    assert (status, body) == (200, "answered by router")
    assert headers["x-order"] == "<app" and headers["access-control-allow-origin"] == "https://a.example"
    status, body, headers = both(server, "?answer=app", ORIGIN)
    assert (status, body) == (200, "answered by app") and "x-order" not in headers


def test_a_short_circuiting_hook_still_runs_the_after_hooks_and_middleware(server):
    status, body, headers = both(server, "?short=1", ORIGIN)
    assert (status, body) == (200, "short-circuited")
    assert headers["x-seen-after"] == "before" and headers["x-order"] == "<route<router<app"


def test_a_handled_exception_goes_out_through_the_middleware(server):
    status, body, headers = both(server, "?raise=before", ORIGIN)
    assert (status, body) == (418, '{"teapot":true}')
    assert headers["x-order"] == "<route<router<app" and headers["vary"] == "Origin"


def test_an_unhandled_exception_or_a_failing_half_is_a_plain_500(server):
    for query in ("?raise=unhandled", "?fail=router", "?fail=app"):
        status, body, headers = both(server, query, ORIGIN)
        assert (status, body, headers) == (500, '{"detail":"Internal Server Error"}', {})


def test_context_variables_reach_the_after_hook_and_stay_with_their_request(server):
    _, body, headers = both(server)
    assert '"seen":"before"' in body and headers["x-seen-after"] == "before"
    assert httpx.get(server.url + "/handled", timeout=TIMEOUT).text == "unset"


def test_system_exit_in_a_chain_run_as_one_call_is_a_500_and_the_connection_goes_on(server):
    with server.connect() as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(b"GET /exit HTTP/1.1\r\nHost: a\r\nOrigin: https://a.example\r\n\r\n")
        assert read_response(sock)[0] == 500
        sock.sendall(b"GET /inline HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock)[0] == 200


def test_an_http_exception_keeps_its_status_and_gets_the_cors_fields(server):
    r = httpx.get(server.url + "/http-error", headers=ORIGIN, timeout=TIMEOUT)
    assert r.status_code == 409 and r.json() == {"detail": "taken"}
    assert r.headers["access-control-allow-origin"] == "https://a.example"
    assert r.headers["x-order"] == "<route<router<app"


def test_a_subclass_with_its_own_dispatch_keeps_it():
    from catzilla.testclient import TestClient

    with TestClient(load_test_app("phased_app").own) as client:
        r = client.get("/", headers=ORIGIN)
    assert r.headers["x-own-dispatch"] == "1"
    assert r.headers["access-control-allow-origin"] == "https://a.example"


def test_the_blocked_loop_detector_names_a_blocking_half(server):
    r = httpx.get(server.url + "/blocking", headers={"x-block": "1"}, timeout=TIMEOUT)
    assert r.status_code == 200
    deadline = time.monotonic() + 5
    while "middleware Blocker for GET /blocking has blocked the event loop" not in server.logs():
        assert time.monotonic() < deadline, server.logs()[-2000:]
        time.sleep(0.1)
