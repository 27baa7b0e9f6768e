"""bench_app's routes plus one handler with two cached dependencies and the same handler
without them, async and def (issue 9: the first keeps at least 0.8 of the second's
throughput). bench_app's own routes are unchanged: they have no dependencies.

    BENCH_APP=bench_app_deps python loadtests/profile_request.py /deps/async
    python -m catzilla run loadtests.bench_app_deps:app   # then drive /deps/async, /nodeps/async...
"""
from typing import Annotated

from catzilla import Depends, JSONResponse, Request

try:
    from loadtests.bench_app import app
except ImportError:  # run from loadtests/ (profile_request.py puts it on sys.path)
    from bench_app import app


# Two dependencies, the second using the first: the first is called once (cached).
async def settings() -> dict:
    return {"greeting": "Hello, World!"}


async def message(config: Annotated[dict, Depends(settings)]) -> str:
    return config["greeting"]


@app.get("/deps/async")
async def deps_async(text: Annotated[str, Depends(message)], config: Annotated[dict, Depends(settings)]):
    return JSONResponse({"message": text})


@app.get("/nodeps/async")
async def nodeps_async(request: Request):
    return JSONResponse({"message": "Hello, World!"})


def settings_sync() -> dict:
    return {"greeting": "Hello, World!"}


def message_sync(config: Annotated[dict, Depends(settings_sync)]) -> str:
    return config["greeting"]


@app.get("/deps/sync")
def deps_sync(text: Annotated[str, Depends(message_sync)], config: Annotated[dict, Depends(settings_sync)]):
    return JSONResponse({"message": text})


@app.get("/nodeps/sync")
def nodeps_sync(request: Request):
    return JSONResponse({"message": "Hello, World!"})
