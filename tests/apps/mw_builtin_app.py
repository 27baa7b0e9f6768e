"""App for tests/test_middleware_builtin.py: the built-in middleware over sync, async,
streaming and big routes.

`app` allows one origin without credentials; `cred_app` allows any origin, method and header
with credentials (so every "*" must be answered with the request's own values).
"""
from __future__ import annotations

import asyncio
import gzip
import threading

from catzilla import Catzilla, PlainTextResponse, StreamingResponse
from catzilla.middleware import (CORSMiddleware, GZipMiddleware, RequestIDMiddleware,
                                 TrustedHostMiddleware)
from catzilla.responses import Response

BIG_TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(2000))
HOSTS = ["127.0.0.1", "localhost", "*.example.com", "www.site.com"]

# The streams stop after their first piece until /release: a test can check that piece
# arrived (compressed and decodable) while the handler is still producing the rest.
_async_gate: asyncio.Event | None = None
_sync_gate = threading.Event()


def _gate() -> asyncio.Event:
    global _async_gate
    if _async_gate is None:
        _async_gate = asyncio.Event()
    return _async_gate


def build(**cors: object) -> Catzilla:
    app = Catzilla()
    # Added last is outermost: TrustedHost, CORS, RequestID, GZip, then the route.
    app.add_middleware(GZipMiddleware, minimum_size=500)
    app.add_middleware(RequestIDMiddleware)
    app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=HOSTS)

    @app.get("/sync")
    def sync_route(request):
        return {"kind": "sync", "request_id": request.state.request_id}

    @app.get("/async")
    async def async_route(request):
        await asyncio.sleep(0)
        return {"kind": "async", "request_id": request.state.request_id}

    @app.post("/items")
    async def create_item(request):
        return {"created": True}

    @app.get("/big")
    def big(request):
        return PlainTextResponse(BIG_TEXT)

    @app.get("/small")
    async def small(request):
        return PlainTextResponse("small body")

    @app.get("/encoded")
    def encoded(request):
        # Already gzip-encoded by the handler: must go out exactly as it is.
        return Response(gzip.compress(BIG_TEXT.encode()), headers={"Content-Encoding": "gzip"},
                        media_type="text/plain")

    @app.get("/stream")
    async def stream(request):
        async def pieces():
            yield "first piece\n"
            await asyncio.wait_for(_gate().wait(), 10)
            for i in range(50):
                yield f"piece {i}: {'x' * 40}\n"
        return StreamingResponse(pieces(), media_type="text/plain")

    @app.get("/sync-stream")
    def sync_stream(request):
        def pieces():
            yield b"first sync piece\n"
            _sync_gate.wait(10)
            for i in range(50):
                yield f"sync piece {i}\n"
        return StreamingResponse(pieces(), media_type="text/plain")

    @app.get("/release")
    async def release(request):
        _gate().set()
        _sync_gate.set()
        return {"released": True}

    @app.get("/rearm")
    async def rearm(request):
        _gate().clear()
        _sync_gate.clear()
        return {"rearmed": True}

    @app.get("/events")
    async def events(request):
        async def pieces():
            for i in range(30):
                yield f"data: event {i} {'y' * 40}\n\n"
        return StreamingResponse(pieces(), media_type="text/event-stream")

    return app


app = build(allow_origins=["https://allowed.example"], allow_methods=["GET", "POST"],
            allow_headers=["X-Token"], expose_headers=["X-Request-ID"], max_age=300)
cred_app = build(allow_origins=["*"], allow_methods=["*"], allow_headers=["*"], allow_credentials=True)
