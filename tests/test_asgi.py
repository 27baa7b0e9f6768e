"""The ASGI bridge, both ways, with real servers and real clients: our app under uvicorn,
and a Starlette app (plus a pure ASGI middleware) under our server."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from conftest import APPS, ROOT, free_port, load_test_app, stop_process, wait_listening

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")


@contextlib.contextmanager
def uvicorn_server(target: str, *args: str, **environ: str):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(APPS), os.environ.get("PYTHONPATH", "")]),
               **environ)
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", target, "--port", str(port), "--log-level", "info",
                             "--lifespan", "on", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_listening("127.0.0.1", port, proc, 20):
            log.seek(0)
            raise RuntimeError("uvicorn did not start:\n" + log.read().decode(errors="replace"))
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop_process(proc, signal.SIGTERM)
        log.close()


@pytest.fixture(scope="module")
def under_uvicorn():
    with uvicorn_server("asgi_app:app") as (url, log):
        with httpx.Client(base_url=url, timeout=10) as client:
            yield client, log


def test_routes_binding_and_the_hybrid_executor_under_uvicorn(under_uvicorn):
    client, _ = under_uvicorn
    response = client.get("/json")
    assert response.status_code == 200 and response.json() == {"message": "Hello, World!"}
    assert response.headers["server"] == "uvicorn"
    assert response.headers["x-stamp"] == "outer"  # the pure ASGI middleware ran
    assert client.get("/items/5", params={"q": 7}).json() == {"item_id": 5, "q": 7}
    invalid = client.get("/items/5", params={"q": -1})
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["query", "q"]
    assert client.get("/sync").json()["thread"].startswith("catzilla-pool")  # def: in our pool
    assert client.post("/echo", content=b"z" * 100_000).json() == {"size": 100_000, "stamped": "outer"}
    assert client.get("/nope").status_code == 404
    refused = client.post("/json")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    assert client.head("/json").content == b""
    assert client.get("/error").json() == {"detail": "taken"}
    assert client.get("/stream").text == "one,two,three"


def test_lifespan_and_state_under_uvicorn(under_uvicorn):
    client, _ = under_uvicorn
    assert client.get("/state").json() == {"greeting": "hello from the lifespan", "started": True}


def test_a_crash_is_a_500_and_logged_under_uvicorn(under_uvicorn):
    client, log = under_uvicorn
    assert client.get("/crash").status_code == 500
    log.seek(0)
    assert "RuntimeError: boom" in log.read().decode(errors="replace")


def test_the_request_timeout_applies_under_uvicorn():
    """CATZILLA_REQUEST_TIMEOUT reaches the bridge: async and def handlers past it are
    answered 504 as our server answers them, and a route's own timeout= overrides it."""
    with uvicorn_server("asgi_app:app", CATZILLA_REQUEST_TIMEOUT="1") as (url, log):
        with httpx.Client(base_url=url, timeout=10) as client:
            for path in ("/slow", "/slow/sync"):
                started = time.monotonic()
                response = client.get(path)
                assert response.status_code == 504, path
                assert response.json() == {"detail": "Gateway Timeout"}
                assert 0.9 <= time.monotonic() - started < 4, path
            assert client.get("/slow", params={"s": "0.1"}).text == "finished"  # within it
            own = client.get("/slow/own", params={"s": "1.5"})  # timeout=0: no limit for it
            assert own.status_code == 200 and own.text == "finished"
            assert client.get("/json").status_code == 200  # the abandoned thread did not block the rest
            log.seek(0)
            text = log.read().decode(errors="replace")
            assert "request timed out: the handler for GET /slow ran for over 1 s; answered 504" in text
            assert "request timed out: the handler for GET /slow/sync ran for over 1 s; answered 504" in text


def test_uvicorns_root_path_reaches_urls_the_document_and_the_docs_page():
    """uvicorn --root-path (a proxy strips the prefix): as --root-path under our server."""
    with uvicorn_server("asgi_app:app", "--root-path", "/api") as (url, _):
        with httpx.Client(base_url=url, timeout=10) as client:
            where = client.get("/where").json()
            assert where == {"url": f"{url}/api/where", "root_path": "/api"}
            assert '"url": "/api/openapi.json"' in client.get("/docs").text
            assert 'spec-url="/api/openapi.json"' in client.get("/redoc").text
            assert client.get("/openapi.json").json()["servers"] == [{"url": "/api"}]


def test_background_tasks_under_uvicorn(under_uvicorn):
    client, _ = under_uvicorn
    assert client.get("/later").text == "scheduled"
    for _ in range(50):
        if client.get("/later/seen").json()["later"]:
            break
    assert client.get("/later/seen").json()["later"] == ["done"]


def test_openapi_under_uvicorn(under_uvicorn):
    client, _ = under_uvicorn
    paths = client.get("/openapi.json").json()["paths"]
    assert "/items/{item_id}" in paths and not any(p.startswith("/sub") for p in paths)


def test_a_mounted_starlette_app_under_our_server(serve):
    server = serve("asgi_app:app")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        hello = client.get("/sub/hello", params={"q": "x"})
        assert hello.status_code == 200
        assert hello.json() == {"root_path": "/sub", "path": "/sub/hello", "query": "x"}
        assert hello.headers["server"] == "catzilla" and hello.headers["x-stamp"] == "outer"
        assert client.get("/sub/").json()["path"] == "/sub/"
        cookies = client.get("/sub/cookies")
        assert sorted(c.split(";")[0] for c in cookies.headers.get_list("set-cookie")) == ["a=1", "b=2"]
        assert client.post("/sub/echo", content="payload").json() == {"body": "payload", "method": "POST"}
        assert client.get("/sub/echo").status_code == 405  # Starlette's own answer
        assert client.get("/sub/missing").status_code == 404
        streamed = client.get("/sub/stream")
        assert streamed.content == b"x" * 10 + b"y" * 10
        assert streamed.headers.get("transfer-encoding") == "chunked"  # streamed as it came
        # Our own routes, through the same pure ASGI middleware:
        assert client.get("/json").headers["x-stamp"] == "outer"
        assert client.post("/echo", content=b"abc").json() == {"size": 3, "stamped": "outer"}


def test_mount_paths_are_checked():
    from catzilla import Catzilla

    app = Catzilla()
    with pytest.raises(ValueError):
        app.mount("sub", lambda scope, receive, send: None)


def test_the_body_limit_applies_to_the_asgi_bridge():
    import asyncio

    from catzilla import Catzilla
    from catzilla.asgi import ASGIAdapter
    from catzilla.config import Config

    app = Catzilla()

    @app.post("/echo")
    async def echo(request):
        return {"size": len(request.body)}

    adapter = ASGIAdapter(app, Config(max_body_size=10))

    async def call(chunks):
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                    for i, c in enumerate(chunks)]
        sent = []

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/echo", "query_string": b"", "headers": [],
                 "client": ("127.0.0.1", 1)}
        await adapter(scope, receive, send)
        return sent[0]["status"], sent[1]["body"]

    async def main():
        assert await call([b"12345", b"678"]) == (200, b'{"size":8}')
        status, body = await call([b"123456", b"78901"])
        assert status == 413 and b"Content Too Large" in body
        assert (await call([b"x" * 11]))[0] == 413

    asyncio.run(main())


def test_pure_asgi_middleware_on_a_router_and_a_route():
    StampMiddleware = load_test_app("asgi_app").StampMiddleware

    from catzilla import APIRouter, Catzilla
    from catzilla.middleware import Middleware
    from catzilla.testclient import TestClient

    app = Catzilla()
    router = APIRouter(prefix="/r", middleware=[Middleware(StampMiddleware, name="router")])

    @router.get("/x", middleware=[StampMiddleware])
    async def x(request):
        return {"seen": request.headers.getlist("x-stamped-by")}

    app.include_router(router)

    @app.get("/plain")
    async def plain(request):
        return {"seen": request.headers.getlist("x-stamped-by")}

    with TestClient(app) as client:
        response = client.get("/r/x")
        assert response.json() == {"seen": ["router", "stamp"]}  # outer layer first
        assert response.headers.get_list("x-stamp") == ["stamp", "router"]
        assert "x-stamp" not in client.get("/plain").headers
