"""One app for both directions of the ASGI bridge: served by uvicorn (`asgi_app:app`) and
by our server, with a Starlette app mounted at /sub and a pure ASGI middleware around
everything."""
from __future__ import annotations

import asyncio
import os
import threading
import time
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.responses import JSONResponse as StarletteJSON
from starlette.responses import PlainTextResponse as StarlettePlain
from starlette.responses import StreamingResponse as StarletteStreaming
from starlette.routing import Route as StarletteRoute

from catzilla import Catzilla, HTTPException, JSONResponse, Query, StreamingResponse
from catzilla.background_tasks import schedule_task


class StampMiddleware:
    """Pure ASGI: a header on the way in (seen by handlers), one on the way out."""

    def __init__(self, app, name: str = "stamp") -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        scope = dict(scope)
        scope["headers"] = list(scope["headers"]) + [(b"x-stamped-by", self.name.encode())]

        async def stamped(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [(b"x-stamp", self.name.encode())]
            await send(message)

        await self.app(scope, receive, stamped)


@asynccontextmanager
async def lifespan(app):
    yield {"greeting": "hello from the lifespan"}


app = Catzilla(lifespan=lifespan)
app.add_middleware(StampMiddleware, name="outer")
STARTED: list[int] = []
app.on_startup(lambda: STARTED.append(os.getpid()))
LATER: list[str] = []


@app.get("/json")
async def json_async(request):
    return JSONResponse({"message": "Hello, World!"})


@app.get("/sync")
def json_sync(request):
    return {"thread": threading.current_thread().name}


@app.get("/items/{item_id}")
async def item(request, item_id: int, q: int = Query(10, ge=0, le=1000)):
    return JSONResponse({"item_id": item_id, "q": q})


@app.post("/echo")
def echo(request):
    return {"size": len(request.body), "stamped": request.headers.get("x-stamped-by")}


@app.get("/state")
async def state(request):
    return {"greeting": request.state.greeting, "started": bool(STARTED)}


@app.get("/stream")
async def stream(request):
    async def chunks():
        for part in ("one,", "two,", "three"):
            await asyncio.sleep(0)
            yield part
    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/error")
async def error(request):
    raise HTTPException(409, "taken")


@app.get("/crash")
def crash(request):
    raise RuntimeError("boom")


@app.get("/later")
def later(request):
    schedule_task(LATER.append, "done")
    return "scheduled"


@app.get("/later/seen")
async def later_seen(request):
    return {"later": LATER}


@app.get("/where")
async def where(request):
    return {"url": str(request.url), "root_path": request.scope["root_path"]}


# For the request timeout (CATZILLA_REQUEST_TIMEOUT under uvicorn): handlers that take too long.
@app.get("/slow")
async def slow(request):
    await asyncio.sleep(float(request.query_params.get("s", "5")))
    return "finished"


@app.get("/slow/sync")
def slow_sync(request):
    time.sleep(float(request.query_params.get("s", "5")))
    return "finished"


@app.get("/slow/own", timeout=0)  # a route's own timeout= wins (0: none)
async def slow_own(request):
    await asyncio.sleep(float(request.query_params.get("s", "2")))
    return "finished"


async def sub_home(request):
    return StarletteJSON({"root_path": request.scope["root_path"], "path": request.url.path,
                          "query": request.query_params.get("q")})


async def sub_cookies(request):
    response = StarlettePlain("two cookies")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


async def sub_echo(request):
    return StarletteJSON({"body": (await request.body()).decode(), "method": request.method})


async def sub_stream(request):
    async def chunks():
        for part in (b"x" * 10, b"y" * 10):
            await asyncio.sleep(0.01)
            yield part
    return StarletteStreaming(chunks(), media_type="application/octet-stream")


starlette_app = Starlette(routes=[
    StarletteRoute("/", sub_home), StarletteRoute("/hello", sub_home),
    StarletteRoute("/cookies", sub_cookies), StarletteRoute("/echo", sub_echo, methods=["POST", "PUT"]),
    StarletteRoute("/stream", sub_stream),
])
app.mount("/sub", starlette_app)
