"""App for tests/test_hardening.py: handlers whose errors or responses are themselves broken."""
from __future__ import annotations

import os

from catzilla import Catzilla, HTTPException, StreamingResponse

app = Catzilla()


@app.get("/pid")
async def pid(request):
    return {"pid": os.getpid()}


@app.get("/bad-exception-header")
async def bad_exception_header(request):
    raise HTTPException(400, "x", headers={"x-a": "1\r\nx-forged: 2"})


@app.get("/bad-exception-header-sync")
def bad_exception_header_sync(request):
    raise HTTPException(400, "x", headers={"x-a": "1\r\nx-forged: 2"})


@app.get("/bad-exception-detail")
async def bad_exception_detail(request):
    raise HTTPException(400, detail=object())


@app.get("/bad-exception-status")
async def bad_exception_status(request):
    raise HTTPException(99, "x")


@app.get("/bad-header-name")
async def bad_header_name(request):
    from catzilla import JSONResponse
    return JSONResponse({}, headers={"X-A: forged": "1"})


@app.get("/bad-stream-header")
async def bad_stream_header(request):
    def chunks():
        yield b"never sent"
    return StreamingResponse(chunks(), headers={"x": "a\r\nb"})


@app.get("/stream")
async def stream(request):
    async def chunks():
        yield b"one"
        yield b"two"
    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/big-int/{value}")
async def big_int(request, value: int):
    return {"value": value}


@app.post("/echo")
async def echo(request):
    return {"body": request.body.decode("latin-1"), "headers": dict(request.headers),
            "trailers": dict(request.trailers)}


@app.get("/smuggled")
async def smuggled(request):
    return {"smuggled": True}


@app.get("/host")
async def host(request):
    return {"host": request.headers.get("host"), "path": request.path, "query": request.query_string}


@app.get("/informational/{status}")
async def informational(request, status: int):
    from catzilla import Response
    return Response(b"", status_code=status)


@app.get("/informational-sync/{status}")
def informational_sync(request, status: int):
    from catzilla import JSONResponse
    return JSONResponse({"x": 1}, status_code=status)


@app.get("/big")
def big(request, size: int = 8 * 1024 * 1024):
    from catzilla import Response
    return Response(b"x" * size, media_type="application/octet-stream")


@app.get("/endless")
async def endless(request):
    async def chunks():
        while True:
            yield b"y" * 65536
    return StreamingResponse(chunks(), media_type="application/octet-stream")
