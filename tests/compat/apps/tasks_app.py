"""Catzilla 0.2.3's task engine as its docs use it (our own app)."""
import asyncio
import os
import threading
import time

from catzilla import Catzilla, JSONResponse
from catzilla.background_tasks import TaskPriority

app = Catzilla()
app.enable_background_tasks(workers=2)
attempts = {"flaky": 0}
ORDER = []
LOG = os.environ.get("TASKS_LOG")


@app.task(priority=TaskPriority.HIGH, max_retries=0)
def add(a, b):
    return {"sum": a + b, "thread": threading.current_thread().name}


async def fetch(delay):
    await asyncio.sleep(delay)
    return "fetched"


def flaky():
    attempts["flaky"] += 1
    if attempts["flaky"] < 3:
        raise ConnectionError("not yet")
    return attempts["flaky"]


def broken():
    raise ValueError("always")


def slow_write(text):
    time.sleep(0.5)
    with open(LOG, "a") as log:
        log.write(text + "\n")


@app.post("/add")
def post_add(request):
    body = request.json()
    handle = app.add_task(add, body["a"], body["b"])
    return JSONResponse({"task_id": handle.task_id, "result": handle.wait(5), "status": handle.status.name}, status_code=202)


@app.get("/fetch")
def get_fetch(request):
    handle = app.add_task(fetch, 0.05)
    short = app.add_task(fetch, 5, timeout_ms=100)
    try:
        short.wait(5)
        timed_out = False
    except TimeoutError:
        timed_out = True
    return {"result": handle.wait(5), "timed_out": timed_out}


@app.get("/retries")
def retries(request):
    good = app.add_task(flaky, max_retries=3)
    bad = app.add_task(broken, max_retries=1)
    try:
        bad.wait(5)
        error = None
    except ValueError as exc:
        error = str(exc)
    return {"flaky": good.wait(5), "attempts": bad.attempts, "error": error, "status": bad.status.name,
            "looked_up": app.get_task_result(good.task_id) is good}


@app.post("/slow")
def slow(request):
    app.add_task(slow_write, request.json()["text"], delay_ms=300)
    return {"queued": True}


@app.get("/stats")
def stats(request):
    s = app.get_task_stats()
    return {"processed": s.total_tasks_processed, "failed": s.failed_tasks, "retries": s.retry_count,
            "workers": s.total_workers, "memory_usage_mb": s.memory_usage_mb}
