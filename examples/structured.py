"""An app in pieces: routers, middleware (CORS, GZip, a request id, a timing wrapper),
hooks, exception handlers and a lifespan, together.

    python examples/structured.py                  # app.listen(port=8000)
    catzilla run structured:app --workers 2        # from examples/

The API's documentation: http://127.0.0.1:8000/docs (Swagger UI), /redoc, /openapi.json.
"""
from __future__ import annotations

import os
import time
from contextlib import asynccontextmanager

from catzilla import APIRouter, Catzilla, HTTPException, JSONResponse, StreamingResponse
from catzilla.middleware import Middleware
from catzilla.middleware.cors import CORSMiddleware
from catzilla.middleware.gzip import GZipMiddleware
from catzilla.middleware.request_id import RequestIDMiddleware


class OutOfStock(Exception):
    def __init__(self, item: str) -> None:
        super().__init__(item)
        self.item = item


@asynccontextmanager
async def lifespan(app):
    inventory = {"apple": 3, "pear": 0}  # stands in for a connection pool opened per worker
    yield {"inventory": inventory}
    inventory.clear()


app = Catzilla(
    title="Shop",
    lifespan=lifespan,
    middleware=[Middleware(RequestIDMiddleware)],
)
app.add_middleware(GZipMiddleware, minimum_size=500)
app.add_middleware(CORSMiddleware, allow_origins=["https://shop.example"], allow_methods=["GET", "POST"])


@app.middleware("http")
async def timing(request, call_next):
    started = time.perf_counter()
    response = await call_next(request)
    response.headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


@app.exception_handler(OutOfStock)
async def out_of_stock(request, exc):
    return JSONResponse({"detail": f"{exc.item} is out of stock"}, status_code=409)


@app.exception_handler(404)
async def not_found(request, exc):
    return JSONResponse({"detail": f"nothing at {request.path}"}, status_code=404)


items = APIRouter(prefix="/items", tags=["items"])


@items.before_request
def require_key(request):  # def: runs in the pool job of a def handler, on the loop otherwise
    if request.method == "POST" and request.headers.get("x-api-key") != os.environ.get("SHOP_KEY", "secret"):
        return JSONResponse({"detail": "a valid x-api-key is required"}, status_code=401)


@items.get("/{name}", name="item")
async def get_item(request, name: str):
    inventory = request.state.inventory
    if name not in inventory:
        raise HTTPException(404)
    return {"name": name, "stock": inventory[name], "request_id": request.state.request_id}


@items.post("/{name}/buy")
def buy(request, name: str):  # a def handler: runs in the worker's thread pool
    inventory = request.state.inventory
    if inventory.get(name, 0) <= 0:
        raise OutOfStock(name)
    inventory[name] -= 1
    return {"name": name, "left": inventory[name]}


@items.get("/")
async def catalogue(request):
    def lines():
        for name, stock in sorted(request.state.inventory.items()):
            yield f"{name}: {stock}\n" * 40  # long enough to be worth compressing
    return StreamingResponse(lines(), media_type="text/plain")


app.include_router(items, prefix="/api")


@app.get("/")
async def home(request):
    return {"item": app.url_path_for("item", name="apple")}


if __name__ == "__main__":
    app.listen(port=int(os.environ.get("CATZILLA_PORT", "8000")))
