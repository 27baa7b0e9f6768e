"""OpenAPI 3.1: the document of real apps is valid (openapi-spec-validator), says what the
routes take and give, and is served with its Swagger UI and ReDoc pages (by a real server
once, through the TestClient otherwise)."""
from __future__ import annotations

import importlib
import sys
from typing import Annotated
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from catzilla import Catzilla, Depends, Header, Query
from catzilla.routers import APIRouter
from catzilla.testclient import TestClient
from conftest import load_test_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shop():
    return load_test_app("openapi_app").app


@pytest.fixture(scope="module")
def document(shop):
    spec = shop.openapi()
    validate(spec)
    return spec


def _example(name: str):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return importlib.import_module(name).app
    finally:
        sys.path.remove(str(ROOT / "examples"))


@pytest.mark.parametrize("name", ["hybrid", "structured"])
def test_the_examples_documents_are_valid(name):
    pytest.importorskip("aiohttp")
    app = _example(name)
    spec = app.openapi()
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    assert spec["paths"], "every route is missing"
    assert "/openapi.json" not in spec["paths"] and "/docs" not in spec["paths"]


def test_info_and_the_routers_prefix_and_tags(document):
    assert document["info"] == {"title": "Shop API", "version": "2.1.0", "description": "Items for sale."}
    operation = document["paths"]["/v1/items/{item_id}"]["get"]
    assert operation["tags"] == ["items"]
    assert operation["summary"] == "Read Item"
    assert operation["description"].startswith("Read one item.")
    assert "/hidden" not in document["paths"]


def test_parameters_with_their_constraints_and_descriptions(document):
    operation = document["paths"]["/v1/items/{item_id}"]["get"]
    params = {(p["in"], p["name"]): p for p in operation["parameters"]}
    assert params["path", "item_id"]["required"] is True
    assert params["path", "item_id"]["schema"] == {"type": "integer", "minimum": 1}
    assert params["path", "item_id"]["description"] == "The item's number"
    assert params["query", "q"]["required"] is False
    assert params["query", "q"]["description"] == "A search word"
    assert {"type": "string", "maxLength": 20} in params["query", "q"]["schema"]["anyOf"]
    assert params["query", "limit"]["schema"] == {"type": "integer", "minimum": 0, "maximum": 100, "default": 10}
    assert params["header", "x-token"]["required"] is True
    assert params["cookie", "session"]["required"] is False
    assert operation["responses"]["422"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/HTTPValidationError"}


def test_models_are_components_referenced_by_bodies_and_responses(document):
    operation = document["paths"]["/v1/items/"]["post"]
    assert operation["requestBody"] == {
        "required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/Receipt"}
    schemas = document["components"]["schemas"]
    assert schemas["Item"]["required"] == ["name", "price"]
    assert schemas["Receipt"]["properties"]["item"] == {"$ref": "#/components/schemas/Item"}
    assert {"ValidationError", "HTTPValidationError"} <= set(schemas)


def test_form_and_multipart_bodies(document):
    login = document["paths"]["/login"]["post"]["requestBody"]
    schema = login["content"]["application/x-www-form-urlencoded"]["schema"]
    assert schema["required"] == ["username", "password"]
    upload = document["paths"]["/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["file"] == {"type": "string", "format": "binary"}
    assert upload["required"] == ["file"]


def test_return_annotations(document):
    assert "content" not in document["paths"]["/page"]["get"]["responses"]["200"]  # a Response class
    assert document["paths"]["/plain"]["get"]["responses"]["200"]["content"] == \
        {"text/plain": {"schema": {"type": "string"}}}
    assert document["paths"]["/tags"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == \
        {"type": "array", "items": {"type": "string"}}
    assert "422" not in document["paths"]["/page"]["get"]["responses"]  # nothing to validate


def test_operation_ids_are_unique(document):
    ids = [op["operationId"] for methods in document["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids))


def test_route_keywords_are_read_when_a_route_carries_them():
    """status_code, response_model, response_class, summary, description, deprecated,
    responses, name and include_in_schema on a route (the decorator keywords) reach the
    document: checked on route objects that carry them."""
    import types

    import msgspec

    from catzilla.openapi import get_openapi
    from catzilla.responses import HTMLResponse

    class Out(msgspec.Struct):
        id: int

    app = Catzilla()

    @app.post("/things")
    async def make(request) -> dict:
        return {}

    real = app.routes[-1]
    keywords = {"status_code": 201, "response_model": Out, "summary": "Make a thing", "deprecated": True,
                "description": "Makes one.", "name": "make_thing",
                "responses": {404: {"description": "No such thing"}, 409: {"model": Out}}}
    route = types.SimpleNamespace(path=real.path, method=real.method, endpoint=real.endpoint,
                                  binding=real.binding, tags=["things"], **keywords)
    hidden = types.SimpleNamespace(path="/h", method="GET", endpoint=real.endpoint, binding=real.binding,
                                   tags=[], include_in_schema=False)
    async def html(request):
        return HTMLResponse("<p>")

    page = types.SimpleNamespace(path="/p", method="GET", endpoint=html, binding=real.binding,
                                 tags=[], response_class=HTMLResponse, response_model=None)
    spec = get_openapi(title="t", version="1", routes=[route, hidden, page])
    validate(spec)
    operation = spec["paths"]["/things"]["post"]
    assert (operation["summary"], operation["description"], operation["deprecated"]) == \
        ("Make a thing", "Makes one.", True)
    assert operation["operationId"].startswith("make_thing")
    assert operation["responses"]["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Out"}
    assert operation["responses"]["404"] == {"description": "No such thing"}
    assert operation["responses"]["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Out"}
    assert "/h" not in spec["paths"]
    assert spec["paths"]["/p"]["get"]["responses"]["200"] == {"description": "Successful Response",
                                                              "content": {"text/html": {}}}


def test_docs_pages_and_the_document_over_a_real_server(serve):
    server = serve("openapi_app:app")
    with httpx.Client(base_url=server.url) as client:
        spec = client.get("/openapi.json")
        assert spec.status_code == 200 and spec.headers["content-type"] == "application/json"
        validate(spec.json())
        assert spec.json()["info"]["title"] == "Shop API"
        docs = client.get("/docs")
        assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
        assert '"url": "/openapi.json"' in docs.text  # the page loads the schema URL
        assert "swagger-ui-bundle.js" in docs.text
        redoc = client.get("/redoc")
        assert redoc.status_code == 200 and 'spec-url="/openapi.json"' in redoc.text
        assert client.get("/docs/oauth2-redirect").status_code == 200


def test_urls_are_settable_and_none_turns_them_off():
    app = Catzilla(openapi_url="/api/schema.json", docs_url="/api/docs", redoc_url=None)

    @app.get("/x")
    async def x(request):
        return {}

    with TestClient(app) as client:
        assert client.get("/openapi.json").status_code == 404
        assert client.get("/api/schema.json").json()["paths"].keys() == {"/x"}
        assert '"url": "/api/schema.json"' in client.get("/api/docs").text
        assert client.get("/redoc").status_code == 404
    off = Catzilla(openapi_url=None)
    assert [r.path for r in off.routes] == []  # no document: no pages either
    with TestClient(off) as client:
        assert client.get("/docs").status_code == 404


def test_root_path_reaches_the_servers_and_the_page():
    app = Catzilla(root_path="/api")
    assert app.openapi()["servers"] == [{"url": "/api"}]
    with TestClient(app) as client:
        assert '"url": "/api/openapi.json"' in client.get("/docs").text


def test_the_cdn_is_a_named_setting(monkeypatch):
    from catzilla.openapi.docs import SWAGGER_UI_JS_URL, get_swagger_ui_html

    assert SWAGGER_UI_JS_URL in get_swagger_ui_html(openapi_url="/o", title="t").body.decode()
    monkeypatch.setenv("CATZILLA_SWAGGER_UI_JS_URL", "https://assets.internal/swagger.js")
    page = get_swagger_ui_html(openapi_url="/o", title="<t>").body.decode()
    assert "https://assets.internal/swagger.js" in page and "&lt;t&gt;" in page


def test_the_example_app_serves_its_docs():
    with TestClient(_example("structured")) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200 and '"url": "/openapi.json"' in docs.text
        spec = client.get("/openapi.json").json()
        validate(spec)
        assert spec["info"]["title"] == "Shop"


def test_fastapis_document_keywords():
    app = Catzilla(title="T", openapi_tags=[{"name": "items", "description": "Things to sell"}],
                   servers=[{"url": "https://api.example"}], terms_of_service="https://example/terms",
                   contact={"name": "Ops", "email": "ops@example.com"},
                   license_info={"name": "MIT", "identifier": "MIT"},
                   swagger_ui_parameters={"docExpansion": "none"})

    @app.get("/items", tags=["items"])
    async def items(request) -> list[str]:
        return []

    spec = app.openapi()
    validate(spec)
    assert spec["tags"] == [{"name": "items", "description": "Things to sell"}]
    assert spec["servers"] == [{"url": "https://api.example"}]
    assert spec["info"]["contact"]["email"] == "ops@example.com" and spec["info"]["license"]["name"] == "MIT"
    assert spec["info"]["termsOfService"] == "https://example/terms"
    with TestClient(app) as client:
        assert '"docExpansion": "none"' in client.get("/docs").text


def test_the_dependencies_parameters_are_documented_as_fastapis_are():
    def api_key(x_key: Annotated[str, Header(description="The caller's key")]) -> str:
        return x_key

    def paging(limit: int = Query(10, le=100, description="At most this many"), key: str = Depends(api_key)):
        return limit

    app = Catzilla()
    router = APIRouter(prefix="/v1", dependencies=[Depends(api_key)])

    @router.get("/things")
    async def things(request, page: int = Depends(paging), q: str | None = None):
        return []

    app.include_router(router)
    spec = app.openapi()
    validate(spec)
    parameters = {(p["in"], p["name"]): p for p in spec["paths"]["/v1/things"]["get"]["parameters"]}
    assert parameters.keys() == {("header", "x-key"), ("query", "limit"), ("query", "q")}  # x-key once
    assert parameters[("header", "x-key")]["description"] == "The caller's key"
    assert parameters[("header", "x-key")]["required"] is True
    assert parameters[("query", "limit")]["schema"] == {"type": "integer", "maximum": 100, "default": 10}
    assert parameters[("query", "limit")]["description"] == "At most this many"
