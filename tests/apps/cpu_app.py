"""App for tests/test_cpu_lane.py and loadtests/cpu_lane.py: the same CPU-bound handlers in
the thread pool and in the CPU lane. Every answer carries the pid of the process that ran it."""
import os
import time

from catzilla import Catzilla, Depends, HTTPException
from catzilla.core import get_handler_stats

app = Catzilla()


def spin(ms: float) -> int:
    """Pure-Python work for about `ms` milliseconds of CPU: it holds the GIL throughout."""
    deadline = time.thread_time() + ms / 1000
    count = 0
    while time.thread_time() < deadline:
        count += 1
    return count


@app.get("/ping")
async def ping():
    return {"pong": True}


@app.get("/pid")
async def pid():
    return {"pid": os.getpid()}


def compute(n: int, fail: str = "") -> dict:
    if n < 0:
        raise HTTPException(418, f"no negative work: {n}", {"x-why": "negative"})
    if fail == "crash":
        raise ZeroDivisionError("a bug in the handler")
    spin(n)
    return {"n": n, "square": n * n, "fail": fail}


@app.get("/pool/{n}")
def pool_compute(request, n: int, fail: str = ""):
    return {**compute(n, fail), "pid": os.getpid()}


@app.get("/lane/{n}", cpu_bound=True)
def lane_compute(request, n: int, fail: str = ""):
    return {**compute(n, fail), "pid": os.getpid()}


@app.post("/lane-echo", cpu_bound=True)
def lane_echo(request):
    return {"body": request.text(), "agent": request.headers.get("user-agent"),
            "query": dict(request.query_params), "client": request.client.host, "pid": os.getpid()}


@app.get("/spin/{ms}")
def spin_route(ms: float):
    """CPU-bound but not marked: it runs in the pool, and the stats should say so."""
    return {"count": spin(ms)}


@app.get("/lane-spin/{ms}", cpu_bound=True)
def lane_spin(ms: float):
    return {"count": spin(ms), "pid": os.getpid()}


@app.get("/lane-slow", cpu_bound=True, timeout=0.5)
def lane_slow():
    spin(3000)
    return {"finished": True}


@app.get("/stats")
async def stats():
    return get_handler_stats()


@app.get("/sleep/{ms}")
def sleep_route(ms: float):
    """Slow but not CPU-bound: it waits, and gives the GIL away meanwhile."""
    time.sleep(ms / 1000)
    return {"slept": ms}


@app.get("/lane-stuck", cpu_bound=True, timeout=0)
def lane_stuck():
    """Stuck in C code that holds the GIL (a regular expression that backtracks for ever):
    no Python thread of the process runs, so its heartbeat stops."""
    import re

    return {"matched": bool(re.match(r"(a+)+$", "a" * 64 + "b"))}


def multiplier(k: int = 2) -> int:
    return k


@app.get("/pool-dep/{n}")
def pool_dep(n: int, k: int = Depends(multiplier)):
    return {"value": n * k, "pid": os.getpid()}


@app.get("/lane-dep/{n}", cpu_bound=True)
def lane_dep(n: int, k: int = Depends(multiplier)):
    return {"value": n * k, "pid": os.getpid()}
