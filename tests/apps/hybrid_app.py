"""App for tests/test_hybrid.py: where each kind of handler runs, and how the pool behaves."""
from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
import time

from catzilla import Catzilla
from catzilla.core import get_handler_stats

app = Catzilla()

# Set at import time (module level), and in an on_startup hook: both must be visible in the
# pool threads that run `def` handlers.
MODULE_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("module_var", default="unset")
MODULE_VAR.set("module-level")
STARTUP_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("startup_var", default="unset")


@app.on_startup
def set_startup_var() -> None:
    STARTUP_VAR.set("from-startup")


def where(tag: str) -> dict:
    return {
        "tag": tag,
        "thread": threading.get_ident(),
        "thread_name": threading.current_thread().name,
        "main": threading.main_thread().ident,
        "on_main": threading.get_ident() == threading.main_thread().ident,
        "pid": os.getpid(),
    }


# -- plain kinds ---------------------------------------------------------------------------

@app.get("/sync/where")
def sync_where(request):
    return where("sync")


@app.get("/async/where")
async def async_where(request):
    await asyncio.sleep(0)
    return where("async")


@app.get("/async/where-inline")
async def async_where_inline(request):  # no await: driven inline on the loop
    return where("async-inline")


@app.get("/async/ping")
async def async_ping(request):
    return {"pong": True, "t": time.time()}


@app.get("/async/sleep")
async def async_sleep(request):
    started = time.monotonic()
    await asyncio.sleep(0.5)
    return {"slept": round(time.monotonic() - started, 3), **where("async-sleep")}


@app.get("/sync/sleep")
def sync_sleep(request):
    started = time.monotonic()
    time.sleep(0.5)
    return {"slept": round(time.monotonic() - started, 3), **where("sync-sleep")}


@app.get("/sync/spin")
def sync_spin(request):
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 2.0:
        n += 1
    return {"spun": round(time.monotonic() - started, 3), "iterations": n, **where("spin")}


@app.get("/sync/boom")
def sync_boom(request):
    raise RuntimeError("sync handler exploded on purpose")


@app.get("/async/boom")
async def async_boom(request):
    await asyncio.sleep(0)
    raise ValueError("async handler exploded on purpose")


class Opaque:
    """Not JSON serialisable: returning it in a dict must give a 500, whatever the kind."""


@app.get("/sync/unserialisable")
def sync_unserialisable(request):
    return {"value": Opaque()}


@app.get("/async/unserialisable")
async def async_unserialisable(request):
    await asyncio.sleep(0)
    return {"value": Opaque()}


@app.get("/async/unserialisable-inline")
async def async_unserialisable_inline(request):  # no await: the inline path
    return {"value": Opaque()}


@app.get("/sync/exit")
def sync_exit(request):
    raise SystemExit(3)


@app.get("/async/exit")
async def async_exit(request):
    await asyncio.sleep(0)
    raise SystemExit(3)


@app.get("/sync/context")
def sync_context(request):
    return {"module": MODULE_VAR.get(), "startup": STARTUP_VAR.get(), **where("sync-context")}


@app.get("/async/context")
async def async_context(request):
    await asyncio.sleep(0)
    return {"module": MODULE_VAR.get(), "startup": STARTUP_VAR.get(), **where("async-context")}


@app.get("/stats")
async def stats(request):
    return get_handler_stats()


# -- classification through wrappers -------------------------------------------------------

async def _tagged_async(tag, request):
    await asyncio.sleep(0)
    return where(tag)


def _tagged_sync(tag, request):
    return where(tag)


class Handlers:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    async def method(self, request):
        await asyncio.sleep(0)
        return where(self.tag)


class AsyncCallable:
    async def __call__(self, request):
        await asyncio.sleep(0)
        return where("async-callable")


class SyncCallable:
    def __call__(self, request):
        return where("sync-callable")


def plain_sync(request):
    return where("plain-sync")


def returns_coroutine(request):
    # A plain def that hands back a coroutine: the server must await it on the loop.
    return _tagged_async("returned-coroutine", request)


app.add_route("/cls/partial-async", functools.partial(_tagged_async, "partial-async"))
app.add_route("/cls/bound-async", Handlers("bound-async").method)
app.add_route("/cls/callable-async", AsyncCallable())
app.add_route("/cls/plain-sync", plain_sync)
app.add_route("/cls/partial-sync", functools.partial(_tagged_sync, "partial-sync"))
app.add_route("/cls/callable-sync", SyncCallable())
app.add_route("/cls/returns-coroutine", returns_coroutine)

# Counted for the "routes: X sync, Y async" start-up line (one route per path, GET only):
#   sync:  /sync/where /sync/sleep /sync/spin /sync/boom /sync/unserialisable /sync/exit
#          /sync/context /cls/plain-sync /cls/partial-sync /cls/callable-sync
#          /cls/returns-coroutine                                                        = 11
#   async: /async/where /async/where-inline /async/ping /async/sleep /async/boom
#          /async/unserialisable /async/unserialisable-inline /async/exit /async/context
#          /stats /cls/partial-async /cls/bound-async /cls/callable-async               = 13
EXPECTED_SYNC_ROUTES = 11
# + 4: the OpenAPI document and its pages (/openapi.json, /docs, /docs/oauth2-redirect, /redoc)
EXPECTED_ASYNC_ROUTES = 13 + 4
