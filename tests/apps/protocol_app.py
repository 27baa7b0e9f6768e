"""App for tests/test_protocol.py: small endpoints to drive the HTTP/1.1 server with."""
from __future__ import annotations

import asyncio
import os
import threading
import time

from catzilla import Catzilla

app = Catzilla()


@app.get("/hello")
async def hello(request):
    return {"hello": "world"}


@app.get("/hello-sync")
def hello_sync(request):
    return {"hello": "sync"}


@app.get("/pid")
async def pid(request):
    return {"pid": os.getpid()}


@app.get("/slow")
async def slow(request, delay: float = 0.5):
    await asyncio.sleep(delay)
    return {"slow": True, "delay": delay}


@app.get("/slow-sync")
def slow_sync(request, delay: float = 1.0):
    time.sleep(delay)
    return {"slow_sync": True, "delay": delay}


@app.post("/echo")
async def echo(request):
    return {
        "body": request.body.decode("latin-1"),
        "length": len(request.body),
        "http_version": request.http_version,
        "content_type": request.headers.get("content-type", None),
    }


@app.get("/header")
async def header(request):
    return {"x-test": request.headers.get("x-test", None)}


# How many /tracked-slow* requests are running right now (for the graceful-stop test).
IN_FLIGHT = {"slow": 0}
_LOCK = threading.Lock()


def _track(delta: int) -> None:
    with _LOCK:
        IN_FLIGHT["slow"] += delta


@app.get("/inflight")
async def inflight(request):
    return dict(IN_FLIGHT)


@app.get("/tracked-slow")
async def tracked_slow(request, delay: float = 1.0):
    _track(1)
    try:
        await asyncio.sleep(delay)
    finally:
        _track(-1)
    return {"tracked": "async", "delay": delay}


@app.get("/tracked-slow-sync")
def tracked_slow_sync(request, delay: float = 1.0):
    _track(1)
    try:
        time.sleep(delay)
    finally:
        _track(-1)
    return {"tracked": "sync", "delay": delay}
