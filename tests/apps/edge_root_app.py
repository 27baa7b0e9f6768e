"""Catzilla(root_path=) given by the app: it wins over --root-path (tests/test_edge.py)."""
from catzilla import Catzilla, JSONResponse

app = Catzilla(root_path="/app")


@app.get("/where")
def where(request):
    return JSONResponse({"url": request.url, "path": request.path, "root_path": request.scope["root_path"]})
