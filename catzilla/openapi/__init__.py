"""OpenAPI: the app's document (`app.openapi()`, served at `/openapi.json`) and the pages
that show it (`/docs`, `/redoc`), at FastAPI's module paths (`catzilla.openapi.utils`,
`catzilla.openapi.docs`)."""
from .docs import get_redoc_html, get_swagger_ui_html
from .utils import get_openapi

__all__ = ["get_openapi", "get_swagger_ui_html", "get_redoc_html"]
