"""The pages that show an OpenAPI document: Swagger UI (`/docs`) and ReDoc (`/redoc`).

The pages are ours; the viewers' scripts and styles load from a CDN. Where they load from
is a named default here, for a network that cannot reach the public CDN: pass other URLs
to the functions below, or set `CATZILLA_SWAGGER_UI_JS_URL`, `CATZILLA_SWAGGER_UI_CSS_URL`
or `CATZILLA_REDOC_JS_URL` (read when the page is built, at start-up).
"""
from __future__ import annotations

import html
import json
import os
import typing

import msgspec

from ..responses import HTMLResponse, Response

__all__ = ["SWAGGER_UI_JS_URL", "SWAGGER_UI_CSS_URL", "REDOC_JS_URL", "get_swagger_ui_html", "get_redoc_html",
           "add_docs_routes"]

# Major versions pinned: a new major release of a viewer may change its options.
SWAGGER_UI_JS_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_UI_CSS_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
REDOC_JS_URL = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"


def _default(name: str, value: str) -> str:
    return os.environ.get("CATZILLA_" + name, value)


def _script_value(value: typing.Any) -> str:
    """A value written into a <script>: JSON that cannot close the element early."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def get_swagger_ui_html(*, openapi_url: str, title: str, swagger_js_url: str | None = None,
                        swagger_css_url: str | None = None,
                        swagger_ui_parameters: typing.Mapping[str, typing.Any] | None = None) -> HTMLResponse:
    """FastAPI's `fastapi.openapi.docs.get_swagger_ui_html`: the Swagger UI page for the
    document at `openapi_url`."""
    js = swagger_js_url or _default("SWAGGER_UI_JS_URL", SWAGGER_UI_JS_URL)
    css = swagger_css_url or _default("SWAGGER_UI_CSS_URL", SWAGGER_UI_CSS_URL)
    options = {"url": openapi_url, "dom_id": "#swagger-ui", "deepLinking": True,
               **(swagger_ui_parameters or {})}
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{html.escape(css)}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{html.escape(js)}"></script>
<script>
const options = {_script_value(options)};
options.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
options.layout = "BaseLayout";
window.ui = SwaggerUIBundle(options);
</script>
</body>
</html>
"""
    return HTMLResponse(page)


def get_redoc_html(*, openapi_url: str, title: str, redoc_js_url: str | None = None) -> HTMLResponse:
    """FastAPI's `fastapi.openapi.docs.get_redoc_html`: the ReDoc page for `openapi_url`."""
    js = redoc_js_url or _default("REDOC_JS_URL", REDOC_JS_URL)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="{html.escape(openapi_url)}"></redoc>
<script src="{html.escape(js)}"></script>
</body>
</html>
"""
    return HTMLResponse(page)


def add_docs_routes(app: typing.Any) -> None:
    """The app's `openapi_url`, `docs_url` (with Swagger UI's OAuth2 redirect page) and
    `redoc_url` routes, those that are not None. Their handlers never await, so they run on
    the loop without a Task; the document is encoded once."""
    if not app.openapi_url:
        return
    encoded: list[bytes] = []

    async def openapi(request: typing.Any) -> Response:
        if not encoded:
            encoded.append(msgspec.json.encode(app.openapi()))
        return Response(encoded[0], media_type="application/json")

    def document_url(request: typing.Any) -> str:
        return (getattr(request, "root_path", "") or app.root_path) + app.openapi_url

    async def swagger_ui_html(request: typing.Any) -> Response:
        parameters = dict(app.swagger_ui_parameters) if getattr(app, "swagger_ui_parameters", None) else {}
        if app.docs_url:
            parameters.setdefault("oauth2RedirectUrl", (getattr(request, "root_path", "") or app.root_path)
                                  + app.docs_url.rstrip("/") + "/oauth2-redirect")
        return get_swagger_ui_html(openapi_url=document_url(request), title=f"{app.title} - Swagger UI",
                                   swagger_ui_parameters=parameters)

    async def swagger_ui_redirect(request: typing.Any) -> Response:
        return HTMLResponse(_OAUTH2_REDIRECT)

    async def redoc_html(request: typing.Any) -> Response:
        return get_redoc_html(openapi_url=document_url(request), title=f"{app.title} - ReDoc")

    routes = [(app.openapi_url, openapi)]
    if app.docs_url:
        routes += [(app.docs_url, swagger_ui_html), (app.docs_url.rstrip("/") + "/oauth2-redirect", swagger_ui_redirect)]
    if app.redoc_url:
        routes.append((app.redoc_url, redoc_html))
    for path, handler in routes:
        handler.include_in_schema = False  # type: ignore[attr-defined]
        app.add_route(path, handler, ["GET"])


# Swagger UI's OAuth2 flows come back here and hand the result to the opener window.
_OAUTH2_REDIRECT = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Swagger UI: OAuth2 Redirect</title></head>
<body>
<script>
"use strict";
(function () {
  const oauth2 = window.opener && window.opener.swaggerUIRedirectOauth2;
  if (!oauth2) { document.body.textContent = "Nothing to do: this page is for Swagger UI's OAuth2 sign-in."; return; }
  const sentState = oauth2.state;
  const redirectUrl = oauth2.redirectUrl;
  const isValid = (params) => params.state === sentState;
  const hash = window.location.hash.substring(1);
  const search = window.location.search.substring(1);
  const source = /code|token|error/.test(hash) ? hash : search;
  const params = Object.fromEntries(new URLSearchParams(source));
  const flow = oauth2.auth.schema.get("flow");
  if ((flow === "accessCode" || flow === "authorizationCode" || flow === "authorization_code") && !oauth2.auth.code) {
    if (!isValid(params)) {
      oauth2.errCb({authId: oauth2.auth.name, source: "auth", level: "warning",
                    message: "Authorization may be unsafe: the state sent and the state received differ."});
    }
    if (params.code) {
      delete oauth2.state;
      oauth2.auth.code = params.code;
      oauth2.callback({auth: oauth2.auth, redirectUrl: redirectUrl});
    } else {
      oauth2.errCb({authId: oauth2.auth.name, source: "auth", level: "error",
                    message: params.error ? params.error + ": " + (params.error_description || "") : "No authorization code received."});
    }
  } else {
    oauth2.callback({auth: oauth2.auth, token: params, isValid: isValid, redirectUrl: redirectUrl});
  }
  window.close();
}());
</script>
</body>
</html>
"""
