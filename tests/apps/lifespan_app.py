"""App for tests/test_lifespan.py: an async lifespan (FastAPI's shape), app.state, the
on_startup/on_shutdown hooks and an on_server_start hook.

Every event is appended, as "<event> <pid>", to the file named by LIFESPAN_EVENTS (when set);
LIFESPAN_FAIL=1 makes the lifespan fail before its yield, SERVER_START_FAIL=1 the
on_server_start hook.
"""
from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager

from catzilla import Catzilla


def record(event: str) -> None:
    path = os.environ.get("LIFESPAN_EVENTS")
    if path:
        with open(path, "a") as f:  # O_APPEND: lines of several processes never mix
            f.write(f"{event} {os.getpid()}\n")


@asynccontextmanager
async def lifespan(app):
    await asyncio.sleep(0)
    if os.environ.get("LIFESPAN_FAIL") == "1":
        raise RuntimeError("lifespan failed on purpose (LIFESPAN_FAIL=1)")
    record("lifespan-enter")
    # What a real app would put here: a connection pool, an HTTP client, a model.
    yield {"db": {"name": "the-pool", "pid": os.getpid()}, "counter": 1, "seen": []}
    record("lifespan-exit")


app = Catzilla(lifespan=lifespan)
app.state.at_import = "set-at-import"


@app.on_server_start
async def migrate() -> None:
    await asyncio.sleep(0)
    if os.environ.get("SERVER_START_FAIL") == "1":
        raise RuntimeError("server start failed on purpose (SERVER_START_FAIL=1)")
    record("server-start")


@app.on_startup
def startup() -> None:
    app.state.from_startup = f"worker-{os.getpid()}"
    record("startup")


@app.on_shutdown
async def shutdown() -> None:
    record("shutdown")


@app.get("/state-async")
async def state_async(request):
    state = request.state
    return {"db": state.db, "counter": state.counter, "seen": list(state.seen),
            "pid": os.getpid()}


@app.get("/state-sync")
def state_sync(request):
    state = request.state
    return {"db": state.db, "counter": state.counter, "pid": os.getpid()}


@app.get("/mutate")
def mutate(request):
    # A request's own attributes never reach the next request (a shallow copy per request);
    # the objects they name are shared: appending to a yielded list is seen by later ones.
    request.state.counter = 99
    request.state.extra = "only-this-request"
    request.state.seen.append("mutated")
    return {"counter": request.state.counter}


@app.get("/extra")
async def extra(request):
    return {"has_extra": hasattr(request.state, "extra"), "counter": request.state.counter}


@app.get("/app-state")
async def app_state(request):
    same = request.app is app
    return {"same_app": same, "at_import": request.app.state.at_import,
            "from_startup": request.app.state.from_startup, "pid": os.getpid()}
