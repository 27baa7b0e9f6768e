"""The task engine's defaults come from the server's settings (--task-*, CATZILLA_TASK_*)
unless the app gives its own (our own app)."""
import os

from catzilla import Catzilla

app = Catzilla()
if os.environ.get("GIVE_WORKERS"):
    app.enable_background_tasks(workers=int(os.environ["GIVE_WORKERS"]))
else:
    app.enable_background_tasks()
attempts = []


def fails():
    attempts.append(1)
    raise ConnectionError("down")


@app.get("/settings")
def settings(request):
    engine = app.tasks
    return {"workers": engine.workers, "queue_size": engine.queue_size,
            "max_retries": engine.settings.max_retries, "timeout": engine.settings.timeout,
            "keep_results": engine.keep_results}


@app.get("/retries")
def retries(request):
    attempts.clear()
    handle = app.add_task(fails)
    try:
        handle.wait(10)
    except Exception as exc:
        return {"attempts": len(attempts), "error": type(exc).__name__}
    return {"attempts": len(attempts)}
