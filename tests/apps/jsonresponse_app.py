"""Handlers that return JSON each way: a dict (to_response), a JSONResponse, and both in the
pool; tests/test_jsonresponse_native.py."""
from __future__ import annotations

import typing

from catzilla import Catzilla, JSONResponse

app = Catzilla()
BIG = 2**70  # beyond orjson: the standard library's encoder takes it


@app.get("/dict")
async def as_dict(request: typing.Any) -> dict[str, typing.Any]:
    return {"message": "Hello, World!", "big": BIG}


@app.get("/response")
async def as_response(request: typing.Any) -> JSONResponse:
    return JSONResponse({"message": "Hello, World!", "big": BIG})


@app.get("/sync")
def in_pool(request: typing.Any) -> dict[str, typing.Any]:
    return {"message": "Hello, World!", "big": BIG}


@app.get("/unencodable")
async def unencodable(request: typing.Any) -> dict[str, typing.Any]:
    return {"x": object()}
