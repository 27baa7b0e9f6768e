"""App for tests/test_stats.py: routes that succeed, fail, sleep, block the loop and read the
stats contract (catzilla.core) from inside a worker. Every answer carries the worker's pid."""
import asyncio
import os
import sys
import time

from catzilla import Catzilla, PlainTextResponse, StreamingResponse
from catzilla.core import get_handler_stats, get_performance_metrics

app = Catzilla()


@app.get("/sync")
def sync_route(request):
    return {"pid": os.getpid(), "kind": "sync"}


@app.get("/async")
async def async_route(request):
    await asyncio.sleep(0)
    return {"pid": os.getpid(), "kind": "async"}


@app.get("/boom")
def boom(request):
    raise RuntimeError("sync boom for the stats test")


@app.get("/aboom")
async def aboom(request):
    await asyncio.sleep(0)
    raise RuntimeError("async boom for the stats test")


@app.get("/slow50")
def slow50(request):
    time.sleep(0.05)
    return {"pid": os.getpid()}


@app.get("/sleepy")
def sleepy(request, t: float = 1.0):
    time.sleep(t)
    return {"pid": os.getpid(), "slept": t}


@app.get("/asleepy")
async def asleepy(request, t: float = 1.0):
    await asyncio.sleep(t)
    return {"pid": os.getpid(), "slept": t}


@app.get("/block")
async def block(request):
    time.sleep(0.3)  # STATS-TEST-BLOCK-LINE
    return {"pid": os.getpid()}


@app.get("/block-task")
async def block_task(request):
    await asyncio.sleep(0)
    time.sleep(0.3)  # STATS-TEST-BLOCK-TASK-LINE
    return {"pid": os.getpid()}


@app.get("/stats")
def stats_sync(request):
    return {"pid": os.getpid(), "stats": get_handler_stats()}


@app.get("/astats")
async def stats_async(request):
    return {"pid": os.getpid(), "stats": get_handler_stats()}


@app.get("/perf")
def perf(request):
    return {"pid": os.getpid(), "metrics": get_performance_metrics()}


@app.get("/native")
def native(request):
    import catzilla._native
    import catzilla.stats
    from catzilla import stats_report

    reader = stats_report._reader
    return {
        "pid": os.getpid(),
        "native_file": catzilla._native.__file__,
        "stats_block_is_native": catzilla.stats.StatsBlock is catzilla._native.StatsBlock,
        "block_type": None if reader is None else type(reader.board.block).__module__
        + "." + type(reader.board.block).__name__,
        "native_loaded": "catzilla._native" in sys.modules,
    }


@app.post("/upload")
async def upload(request):
    return {"pid": os.getpid(), "received": len(request.body)}


@app.get("/big")
def big(request, n: int = 50000):
    return PlainTextResponse("x" * n)


@app.get("/stream")
def stream(request, n: int = 100000):
    def chunks():
        for _ in range(n // 10000):
            yield b"y" * 10000
    return StreamingResponse(chunks(), media_type="application/octet-stream")


# A user route on the metrics path: the --metrics-path probe must answer before it.
@app.get("/metrics")
def user_metrics(request):
    return PlainTextResponse("user route, not the metrics probe")


# Routes only the /metrics test sends to, so their counters are exact.
@app.get("/m/sync")
def m_sync(request):
    return {"pid": os.getpid()}


@app.get("/m/async")
async def m_async(request):
    return {"pid": os.getpid()}


@app.get("/m/boom")
def m_boom(request):
    raise RuntimeError("metrics boom for the stats test")


@app.get("/m/items/{item_id}")
def m_item(request, item_id: int):
    return {"item_id": item_id}


@app.get("/m/slow")
def m_slow(request):
    time.sleep(0.05)
    return {"pid": os.getpid()}
