"""App for tests/test_chains.py: what code in a chain (middleware, hooks) may rely on, as it
may in a handler without one."""
from __future__ import annotations

import asyncio
import contextvars
import time

from catzilla import Catzilla, HTTPException

app = Catzilla()
VAR = contextvars.ContextVar("var", default="unset")
# Set by a def before-hook in the pool job of /sets/def (issue 8: seen by middleware after).
HOOK_VAR = contextvars.ContextVar("hook_var", default="unset")


@app.middleware("http")
async def context_user(request, call_next):
    if request.path == "/leak":
        VAR.set("leaked")
    if request.path == "/token":
        token = VAR.set("x")
        try:
            return await call_next(request)
        finally:
            VAR.reset(token)
    if request.path.startswith("/sets/"):  # what the handler's side set, seen from here
        response = await call_next(request)
        response.headers["x-var"] = VAR.get()
        response.headers["x-hook-var"] = HOOK_VAR.get()
        return response
    if request.path == "/mw-timeout":
        async with asyncio.timeout(5):  # needs a current Task
            return await call_next(request)
    return await call_next(request)


@app.before_request
async def short(request):
    if request.query_params.get("short"):
        return "short-circuited"


@app.before_request
def def_before(request):
    if request.path.startswith("/sets/"):
        HOOK_VAR.set("from-hook")


@app.after_request
def def_after(request, response):
    response.headers["x-def-after"] = "1"


@app.after_request
async def async_after(request, response):
    response.headers["x-async-after"] = "1"


@app.get("/task-features")
async def task_features(request):
    async with asyncio.timeout(5):
        await asyncio.sleep(0.01)
    async with asyncio.TaskGroup() as group:
        group.create_task(asyncio.sleep(0.01))
    return {"task": asyncio.current_task() is not None}


@app.get("/mw-timeout")
async def mw_timeout(request):
    return "ok"


@app.get("/leak")
async def leak(request):
    return VAR.get()


@app.get("/read")
async def read(request):
    return VAR.get()


@app.get("/token")
async def token(request):
    await asyncio.sleep(0.01)
    return VAR.get()


@app.get("/sync")
def sync(request):
    return "handler"


@app.get("/exit")
async def exit_(request):
    raise SystemExit(3)


@app.get("/slow")
def slow(request, seconds: float = 1.0):
    time.sleep(seconds)
    return "slow"


@app.get("/coroutine")
def returns_coroutine(request):
    async def inner():
        await asyncio.sleep(0.01)
        return "from coroutine"
    return inner()


@app.get("/sets/def")
def sets_def(request):
    VAR.set("from-def")
    return "set"


@app.get("/sets/async")
async def sets_async(request):
    VAR.set("from-async")
    return "set"


@app.get("/sets/def-fails")
def sets_def_fails(request):
    VAR.set("from-failed-def")
    raise HTTPException(418, "after setting VAR")
