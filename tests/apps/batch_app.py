"""Inline routes for tests/test_inline_batch.py: a counter (which requests ran), a route
whose handler fails (a 500 in the batch), and a `def` route beside them."""
from __future__ import annotations

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
