"""App for tests/test_app_options.py: Catzilla 0.2.3's and FastAPI's constructor keywords,
and an `@app.options` route."""
from __future__ import annotations

from catzilla import Catzilla, Response

app = Catzilla(title="Inventory", version="2.1.0", description="stock levels", root_path="/api",
               production=True, show_banner=False, log_requests=False, enable_colors=False,
               enable_di=True, auto_validation=True, memory_profiling=False)


@app.options("/items")
def items_options(request):
    return Response(b"", status_code=204, headers={"allow": "GET, OPTIONS", "x-handler": "options"})


@app.get("/items")
def items(request):
    return {"items": []}


@app.get("/meta")
async def meta(request):
    return {"title": app.title, "version": app.version, "description": app.description,
            "root_path": app.root_path, "compat": sorted(app.compat_options)}
