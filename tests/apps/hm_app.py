"""App for tests/test_hardening_master.py: a startup that takes a while (HM_STARTUP_DELAY
seconds, so a test can kill a worker before it is ready) or fails (HM_STARTUP_FAIL=1), and
routes that read the stats contract from inside a worker."""
from __future__ import annotations

import asyncio
import os

from catzilla import Catzilla
from catzilla.core import get_handler_stats

app = Catzilla()


@app.on_startup
async def slow_start() -> None:
    await asyncio.sleep(float(os.environ.get("HM_STARTUP_DELAY", "0")))
    if os.environ.get("HM_STARTUP_FAIL") == "1":
        raise RuntimeError("startup hook failed on purpose (HM_STARTUP_FAIL=1)")


@app.get("/pid")
async def pid(request):
    return {"pid": os.getpid()}


@app.get("/stats")
async def stats(request):
    return {"pid": os.getpid(), "requests": get_handler_stats()["requests"]}
