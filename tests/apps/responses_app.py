"""Responses, files and static directories for tests/test_responses.py and test_static.py.
RESPONSES_FILES names the directory the tests filled (the static mount serves it)."""
from __future__ import annotations

import asyncio
import datetime
import os

from catzilla import Catzilla
from catzilla.responses import (FileResponse, HTMLResponse, JSONResponse, PlainTextResponse,
                                RedirectResponse, Response, StreamingResponse)
from catzilla.sse import EventSourceResponse, ServerSentEvent
from catzilla.staticfiles import StaticFiles

FILES = os.environ.get("RESPONSES_FILES", "/nonexistent")

app = Catzilla()


@app.get("/cookies")
def cookies(request):
    response = JSONResponse({"ok": True})
    response.set_cookie("session", "abc", max_age=3600, httponly=True, secure=True, samesite="strict",
                        domain="example.com", path="/app")
    response.set_cookie("theme", "dark")
    response.set_cookie(name="spaced", value="a b")  # Catzilla 0.2.3's keyword
    response.set_cookie("until", "x", expires=datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc))
    response.delete_cookie("old")
    return response


@app.get("/cookie-attack")
def cookie_attack(request):
    response = Response("no")
    response.set_cookie("a", "b", path="/\r\nx-evil: 1")
    return response


@app.get("/header-attack")
def header_attack(request):
    return Response("no", headers={"x-fine": "1\r\nx-evil: 1"})


@app.get("/headers")
def headers(request):
    response = PlainTextResponse("hi", headers=[("x-multi", "1"), ("x-multi", "2")])
    view = response.headers
    view["x-one"] = "a"
    view["X-One"] = "b"  # replaces, whatever the spelling
    view.append("link", "</a>; rel=preload")
    view.append("link", "</b>; rel=preload")
    view.setdefault("x-default", "d")
    view.setdefault("x-one", "ignored")
    view["x-gone"] = "soon"
    del view["x-gone"]
    response.set_header("X-Legacy", "0.2.3")
    response.headers["x-read"] = f"{response.get_header('x-legacy')}|{view.get('x-one')}|{len(view.getlist('link'))}"
    return response


@app.get("/body-kw")
def body_kw(request):
    return Response(body="<b>hi</b>", content_type="text/html", status_code=201)


@app.get("/media-both")
def media_both(request):
    return HTMLResponse(content="<i>x</i>", media_type="text/html")


@app.get("/redirect")
def redirect(request):
    return RedirectResponse("/target path?q=1")


@app.get("/redirect-301")
def redirect_301(request):
    return RedirectResponse(url="https://example.com/x", status_code=301)


@app.get("/stream-documented")
def stream_documented(request):
    return StreamingResponse((f"line {i}\n" for i in range(3)), content_type="text/plain")


@app.get("/stream-bare")
async def stream_bare(request):
    async def gen():
        yield "a"
        yield b"b"
    return StreamingResponse(gen())


@app.get("/file/{name}")
def file(request, name: str):
    return FileResponse(os.path.join(FILES, name))


@app.get("/download")
def download(request):
    return FileResponse(os.path.join(FILES, "hello.txt"), filename="report ü.txt")


@app.get("/missing-file")
def missing_file(request):
    return FileResponse(os.path.join(FILES, "no-such-file"))


@app.get("/events")
async def events(request):
    async def source():
        yield {"data": "first", "event": "greeting", "id": 1}
        yield ServerSentEvent("line one\nline two", id="2", retry=5000)
        await asyncio.sleep(0.35)  # quiet: pings go out meanwhile
        yield "plain"
    return EventSourceResponse(source(), ping=0.1)


@app.get("/events-sync")
def events_sync(request):
    return EventSourceResponse(iter(["a", "b"]))


app.mount_static("/static", FILES, cache_size_mb=10, enable_compression=True)
app.mount_static("/site", FILES, html=True)
app.mount("/starlette", StaticFiles(directory=FILES, html=True), name="starlette-static")
