"""App for tests/test_overload.py: handlers that never return, return late or are slow, for
request timeouts, a hung thread pool and admission control. Every answer carries the pid."""
from __future__ import annotations

import asyncio
import os
import threading
import time

from catzilla import Catzilla
from catzilla.core import get_handler_stats

app = Catzilla()

# Set only when a test wants the stuck handlers to let go (they never are: the worker is
# retired or stopped around them). Waiting on it, not sleeping, keeps each thread parked.
RELEASE = threading.Event()
# How many async handlers saw their Task cancelled, and how many late sync results exist.
events = {"cancelled": 0, "late_returned": 0}


@app.get("/pid")
async def pid(request):  # no await: driven inline on the loop
    return {"pid": os.getpid()}


@app.get("/stats")
async def stats(request):
    return get_handler_stats()


@app.get("/events")
async def get_events(request):
    return dict(events)


@app.get("/sleep")
def sleep(request, t: float = 0.0):
    time.sleep(t)
    return {"pid": os.getpid(), "slept": t}


@app.get("/nap")
def nap(request):  # nothing to bind: handed to the pool straight from the connection (ext/connection.c)
    time.sleep(0.3)
    return {"slept": 0.3}


@app.get("/asleep")
async def asleep(request, t: float = 0.0):
    await asyncio.sleep(t)
    return {"pid": os.getpid(), "slept": t}


@app.get("/hang", timeout=1.0)
def hang(request):
    RELEASE.wait(60)  # a handler stuck on a lock, a socket without a timeout...
    return {"pid": os.getpid(), "hang": "released"}


@app.get("/ahang", timeout=1.0)
async def ahang(request):
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        events["cancelled"] += 1
        raise
    return {"ahang": "woke"}


@app.get("/late", timeout=0.5)
def late(request):
    time.sleep(1.5)  # past its timeout: this result must never reach the client
    events["late_returned"] += 1
    return {"late": "result"}


@app.get("/hang-default")
def hang_default(request):  # no timeout of its own: the server's --request-timeout applies
    RELEASE.wait(60)
    return {"pid": os.getpid()}


@app.get("/no-limit", timeout=0)
def no_limit(request, t: float = 1.5):  # timeout=0: no limit, whatever the server's default
    time.sleep(t)
    return {"slept": t}


@app.get("/stuck")
def stuck(request):  # no route timeout: for the hung pool test (run with --request-timeout 0)
    RELEASE.wait(60)
    return {"pid": os.getpid()}


def add_route_with_timeout(request):
    RELEASE.wait(60)
    return {"never": True}


app.add_route("/added", add_route_with_timeout, ["GET"], timeout=1.0)
