"""App for tests/test_lifespan.py: a sync @contextmanager lifespan (its exit writes the
file named by LIFESPAN_EVENTS), and an app without any lifespan state."""
from __future__ import annotations

import os
from contextlib import contextmanager

from catzilla import Catzilla


@contextmanager
def lifespan(app):
    if os.environ.get("LIFESPAN_FAIL") == "1":
        raise RuntimeError("sync lifespan failed on purpose")
    app.state.client = "sync-client"
    yield {"kind": "sync"}
    path = os.environ.get("LIFESPAN_EVENTS")
    if path:
        with open(path, "a") as f:
            f.write(f"sync-exit {os.getpid()}\n")


app = Catzilla(lifespan=lifespan)
plain = Catzilla()  # no lifespan: request.state starts empty


@app.get("/kind")
def kind(request):
    return {"kind": request.state.kind, "client": request.app.state.client}


@app.get("/kind-async")
async def kind_async(request):
    return {"kind": request.state.kind}


@plain.get("/state")
async def plain_state(request):
    request.state.mine = 1
    return {"attrs": sorted(request.state._data)}
