"""Catzilla 0.2.3 habits our router and hooks must keep (our own app): a route declared
twice (the last declaration answers), and `def` hooks that run a coroutine with
asyncio.run() around `async def` handlers."""
import asyncio
import threading

from catzilla import Catzilla, JSONResponse
from catzilla.router import RouterGroup

app = Catzilla()


@app.middleware(priority=10, pre_route=True, name="looks_up")
def looks_up(request):
    async def lookup():
        await asyncio.sleep(0)
        return request.path

    request.context["looked_up"] = asyncio.run(lookup())
    request.context["hook_thread"] = threading.current_thread().name


@app.middleware(priority=20, pre_route=True, name="guard")
def guard(request):
    async def allowed():
        await asyncio.sleep(0)
        return request.headers.get("x-token") == "yes"

    if request.path.startswith("/guarded") and not asyncio.run(allowed()):
        return JSONResponse({"error": "token required"}, status_code=401)
    return None


@app.middleware(priority=10, pre_route=False, post_route=True, name="stamps")
def stamps(request, response):
    async def stamp():
        await asyncio.sleep(0)
        return "stamped"

    response.headers["x-after"] = asyncio.run(stamp())
    return response


@app.get("/async")
async def async_handler(request):
    await asyncio.sleep(0)
    return {"looked_up": request.context["looked_up"], "hook_thread": request.context["hook_thread"],
            "loop_thread": threading.current_thread().name}


@app.get("/inline")
async def inline_handler(request):  # never awaits: the server may drive it without a loop turn
    return {"looked_up": request.context["looked_up"]}


@app.get("/guarded")
async def guarded(request):
    return {"ok": True}


@app.get("/sync")
def sync_handler(request):
    return {"looked_up": request.context["looked_up"]}


@app.get("/twice")
def first(request):
    return {"which": "first"}


@app.get("/twice")
def second(request):
    return {"which": "second"}


@app.get("/api/data")
def app_data(request):
    return {"which": "app"}


api = RouterGroup(prefix="/api")


@api.get("/data")
def group_data(request):
    return {"which": "group"}


app.include_routes(api)
