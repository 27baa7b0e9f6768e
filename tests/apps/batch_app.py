"""Inline routes for tests/test_inline_batch.py: a counter (which requests ran), a route
whose handler fails (a 500 in the batch), one that sets a context variable, and a `def`
route beside them."""
from __future__ import annotations

import contextvars
import typing

from catzilla import Catzilla, Request

app = Catzilla()
ran: list[str] = []


@app.get("/count")
async def count(request: Request) -> dict[str, typing.Any]:
    ran.append(request.query_params.get("n", ""))
    return {"ran": len(ran), "n": request.query_params.get("n", "")}


@app.get("/ran")
async def how_many(request: Request) -> dict[str, int]:
    return {"ran": len(ran)}


@app.get("/fail")
async def fail(request: Request) -> dict[str, str]:
    raise RuntimeError("handler failed")


@app.get("/sync")
def in_pool(request: Request) -> dict[str, str]:
    return {"ran": "pool"}


last_seen: contextvars.ContextVar[str | None] = contextvars.ContextVar("last_seen", default=None)


@app.get("/context")
async def context(request: Request) -> dict[str, typing.Any]:
    before = last_seen.get()  # what an earlier request set, if the context leaked
    last_seen.set(request.query_params.get("n", ""))
    return {"before": before}


@app.get("/context/{item_id}")
async def context_bound(item_id: int) -> dict[str, typing.Any]:  # bound by a PlainInvoke
    before = last_seen.get()
    last_seen.set(str(item_id))
    return {"before": before}
