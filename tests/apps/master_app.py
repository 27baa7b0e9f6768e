"""App for tests/test_master.py: tells which worker answered, sleeps, blocks its loop."""
from __future__ import annotations

import asyncio
import os
import time

from catzilla import Catzilla

app = Catzilla()


@app.get("/pid")
async def pid(request):
    return {"pid": os.getpid()}


@app.get("/slow")
async def slow(request, seconds: float = 1.5):
    await asyncio.sleep(seconds)
    return {"pid": os.getpid(), "slept": seconds}


@app.get("/slow-sync")
def slow_sync(request, seconds: float = 1.5):
    time.sleep(seconds)
    return {"pid": os.getpid(), "slept": seconds}


@app.get("/block")
async def block(request, seconds: float = 60.0):
    # Blocks the worker's event loop on purpose: time.sleep in an async handler.
    time.sleep(seconds)
    return {"pid": os.getpid()}


@app.get("/inflight")
async def inflight(request):
    """Requests now running in /slow and /slow-sync, summed over every worker."""
    from catzilla.core import get_handler_stats

    routes = get_handler_stats()["routes"]
    return {"slow": sum(routes.get(key, {}).get("in_flight", 0)
                        for key in ("GET /slow", "GET /slow-sync"))}
