"""`Catzilla(...)` keywords: FastAPI's and Catzilla 0.2.3's are accepted and recorded, any
other is a TypeError naming it (DESIGN.md, "Lifespan and state"); `@app.options(path)` is
the route decorator (no constructor option hides it)."""
from __future__ import annotations

import httpx
import pytest

from catzilla import Catzilla


def test_unknown_keywords_are_a_type_error_naming_them():
    with pytest.raises(TypeError) as info:
        Catzilla(title="ok", debugg=True)
    assert "'debugg'" in str(info.value)
    with pytest.raises(TypeError) as info:
        Catzilla(workers=4, port=8000)  # server settings belong to Config, not the app
    assert "'port'" in str(info.value) and "'workers'" in str(info.value)
    with pytest.raises(TypeError):
        Catzilla(True)  # keywords only


def test_fastapi_keywords_are_recorded():
    startup = lambda: None  # noqa: E731
    app = Catzilla(title="T", description="D", version="9", summary="S", debug=True,
                   docs_url=None, redoc_url=None, openapi_url="/schema.json", root_path="/v1",
                   on_startup=[startup], on_shutdown=[], exception_handlers={}, middleware=[],
                   dependencies=[], lifespan=None)
    assert (app.title, app.description, app.version, app.summary, app.debug) == ("T", "D", "9", "S", True)
    assert (app.docs_url, app.redoc_url, app.openapi_url, app.root_path) == (None, None, "/schema.json", "/v1")
    assert app.compat_options == {}
    defaults = Catzilla()
    assert (defaults.title, defaults.debug, defaults.docs_url, defaults.openapi_url) == \
        ("Catzilla", False, "/docs", "/openapi.json")


def test_catzilla_0_2_3_keywords_are_accepted_and_recorded():
    options = dict(production=True, show_banner=False, log_requests=True, enable_colors=False,
                   enable_di=True, auto_validation=True, memory_profiling=False, use_jemalloc=True,
                   auto_memory_tuning=True, memory_stats_interval=60, di_container=None,
                   show_request_details=True, upload_config=None)
    app = Catzilla(**options)
    assert app.compat_options == options


def test_options_decorator_registers_a_route():
    app = Catzilla(production=True)
    assert callable(app.options)

    @app.options("/x")
    def handler(request):
        return "ok"

    assert [(r.method, r.path) for r in app.routes][-1:] == [("OPTIONS", "/x")]  # after the docs pages


def test_options_route_and_keywords_over_a_real_server(serve):
    server = serve("options_app:app")
    with httpx.Client(base_url=server.url) as client:
        response = client.options("/items")
        assert response.status_code == 204, response.text
        assert response.headers["x-handler"] == "options"
        assert response.headers["allow"] == "GET, OPTIONS"
        assert client.get("/items").json() == {"items": []}
        assert client.get("/meta").json() == {
            "title": "Inventory", "version": "2.1.0", "description": "stock levels", "root_path": "/api",
            "compat": ["auto_validation", "enable_colors", "enable_di", "log_requests",
                       "memory_profiling", "production", "show_banner"]}
        # A method no route has: 405, and Allow lists OPTIONS with the rest.
        refused = client.delete("/items")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD, OPTIONS"
