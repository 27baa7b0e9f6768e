"""App for tests/test_structure.py: routers, middleware, hooks and exception handlers in
layers (app, router, nested router, route)."""
from __future__ import annotations

import threading
import time

from catzilla import APIRouter, Catzilla, HTTPException, JSONResponse, PlainTextResponse
from catzilla.middleware import BaseHTTPMiddleware

app = Catzilla()


def where() -> str:
    name = threading.current_thread().name
    return name if name.startswith("catzilla-pool") else "loop"


def trail(request) -> list[str]:
    try:
        return request.state.trail
    except AttributeError:
        request.state.trail = []
        return request.state.trail


class Tag(BaseHTTPMiddleware):
    def __init__(self, app, name: str) -> None:
        super().__init__(app)
        self.name = name

    async def dispatch(self, request, call_next):
        trail(request).append(f"{self.name}>")
        response = await call_next(request)
        trail(request).append(f"<{self.name}")
        response.headers["x-trail"] = " ".join(trail(request))
        return response


app.add_middleware(Tag, name="app-inner")
app.add_middleware(Tag, name="app-outer")  # added last: outermost


@app.middleware("http")
async def outermost(request, call_next):
    trail(request).append("fn>")
    response = await call_next(request)
    response.headers["x-fn"] = "1"
    return response


@app.before_request
async def app_before(request):
    trail(request).append("app-before")
    if request.headers.get("x-deny") == "app":
        return JSONResponse({"denied": "by app"}, status_code=403)


@app.after_request
def app_after(request, response):
    trail(request).append("app-after")
    response.headers["x-after"] = " ".join(trail(request))
    return response


api = APIRouter(prefix="/api", tags=["api"])
api.add_middleware(Tag, name="router")


@api.before_request
def router_before(request):  # a def hook: shares the pool job of a def handler
    trail(request).append(f"router-before@{where()}")
    if request.headers.get("x-deny") == "router":
        return PlainTextResponse("denied by router", status_code=401)


@api.after_request
def router_after(request, response):
    trail(request).append("router-after")
    return response


def route_hook(request):
    trail(request).append("route-hook")


@api.get("/sync", middleware=[route_hook], name="api-sync")
def api_sync(request):
    trail(request).append(f"handler@{where()}")
    return {"trail": trail(request)}


@api.get("/async/{item}", name="api-item")
async def api_async(request, item: int):
    trail(request).append("handler")
    return {"item": item, "trail": trail(request)}


class Teapot(Exception):
    pass


class StrongTeapot(Teapot):
    pass


@api.get("/teapot")
async def teapot(request):
    raise StrongTeapot("short and stout")


@api.get("/teapot-sync")
def teapot_sync(request):
    raise Teapot("sync")


@api.exception_handler(Teapot)
def handle_teapot(request, exc):  # def: runs in the pool
    return JSONResponse({"teapot": str(exc), "thread": where()},
                        status_code=418)


@api.get("/hook-raises")
async def hook_raises(request):
    return {"never": True}


inner = APIRouter(prefix="/inner")


@inner.get("/ping")
async def inner_ping(request):
    return {"trail": trail(request)}


api.include_router(inner)
app.include_router(api)


@app.exception_handler(404)
async def not_found(request, exc):
    return JSONResponse({"custom": "not here", "path": request.path}, status_code=404)


@app.exception_handler(405)
def not_allowed(request, exc):
    return JSONResponse({"custom": "wrong method", "allow": exc.headers["allow"]}, status_code=405)


@app.get("/http-error")
async def http_error(request):
    raise HTTPException(409, "conflict")


@app.exception_handler(409)
async def conflict(request, exc):
    return PlainTextResponse(f"custom {exc.detail}", status_code=409)


@app.get("/crash")
async def crash(request):
    raise RuntimeError("boom")


@app.get("/broken-handler")
async def broken_handler(request):
    raise LookupError("first failure")


@app.exception_handler(LookupError)
async def broken(request, exc):
    raise ValueError("the handler fails too")


@app.options("/preflight")
async def preflight(request):
    return PlainTextResponse("options")


@app.get("/sleepy", timeout=0.5)
async def sleepy(request, seconds: float = 0.01):
    import asyncio

    await asyncio.sleep(seconds)  # suspends: the chain goes on in a Task from here
    trail(request).append("slept")
    return {"trail": trail(request)}


legacy = APIRouter(prefix="/legacy")  # Catzilla 0.2.3's hooks: priority orders them


@legacy.middleware(priority=90, pre_route=True)
def late(request):
    trail(request).append("p90")


@legacy.middleware(priority=10)
async def early(request):
    trail(request).append("p10")
    if request.headers.get("x-deny") == "legacy":
        return JSONResponse({"denied": "p10"}, status_code=429)


@legacy.middleware(priority=20, post_route=True)
def post(request, response):
    response.headers["x-post"] = "1"  # returns None: the response stays


@legacy.get("/order")
async def order(request):
    trail(request).append("handler")
    return {"trail": trail(request)}


app.include_router(legacy)


legacy_app = Catzilla()  # 0.2.3's handler setters, on an app of its own


@legacy_app.get("/boom")
def boom(request):
    raise ValueError("boom")


@legacy_app.get("/teapot")
def legacy_teapot(request):
    raise Teapot("legacy")


legacy_app.set_not_found_handler(lambda request: JSONResponse({"missing": request.path}, status_code=404))
legacy_app.set_internal_error_handler(lambda request: JSONResponse({"oops": True}, status_code=500))
legacy_app.set_exception_handler(Teapot, lambda request, exc: JSONResponse({"tea": str(exc)}, status_code=418))


blocking = APIRouter(prefix="/blocking")


@blocking.before_request
async def blocking_hook(request):
    if request.headers.get("x-block"):
        time.sleep(0.3)  # blocks the loop: the detector must name this hook


@blocking.get("/route")
async def blocking_route(request):
    return {"ok": True}


app.include_router(blocking)
