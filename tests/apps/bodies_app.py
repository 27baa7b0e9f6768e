"""Request bodies: uploads spooled to disk, streamed bodies, Starlette's awaitable accessors."""
from __future__ import annotations

import asyncio
import os
import threading
import time

from catzilla import Catzilla, File, Form, UploadFile
from catzilla.request import ClientDisconnect

app = Catzilla()

SAVE_DIR = os.environ.get("BODIES_SAVE_DIR", "/tmp")
# What the streaming handlers saw, for the tests to read back over HTTP.
EVENTS: dict[str, list] = {}


def _upload_facts(file: UploadFile) -> dict:
    return {"filename": file.filename, "content_type": file.content_type, "size": file.size,
            "on_disk": file.on_disk, "header": file.headers.get("content-disposition")}


@app.post("/upload")
def upload(request, file: UploadFile = File(...), note: str = Form("")):
    facts = _upload_facts(file)
    first = file.read(4)  # without await, in a def handler
    file.seek(0)
    facts.update(first=first.decode("latin-1"), note=note, body=len(request.body))
    return facts


@app.post("/upload/async")
async def upload_async(request, file: UploadFile = File(...)):
    facts = _upload_facts(file)
    data = await file.read()
    await file.seek(0)
    again = file.read()
    facts.update(read=len(data), again=len(again), same=data == again)
    await file.close()
    return facts


@app.post("/upload/save")
def upload_save(request, file: UploadFile = File(...)):
    path = os.path.join(SAVE_DIR, os.path.basename(file.filename or "upload.bin"))
    file.save_to(path)
    return {"path": path, "size": file.size, "on_disk": file.on_disk, "pid": os.getpid()}


@app.post("/upload/many")
def upload_many(request, files: list[UploadFile] = File(...)):
    return {"names": [f.filename for f in files]}


@app.post("/form/fields")
def form_fields(request, name: str = Form(...), file: UploadFile = File(None)):
    return {"name": name, "file": file.filename if file else None}


@app.post("/stream", stream=True, max_body_size=64 * 1024 * 1024, timeout=0)
async def stream(request):
    total = chunks = 0
    delay = float(request.query_params.get("delay", "0"))
    events = EVENTS.setdefault(request.query_params.get("tag", "-"), [])
    try:
        async for chunk in request.stream():
            total += len(chunk)
            chunks += 1
            events.append(total)
            if delay:
                await asyncio.sleep(delay)
    except ClientDisconnect:
        events.append("disconnect")
        raise
    events.append("done")
    return {"total": total, "chunks": chunks}


@app.post("/stream/sync", stream=True)
def stream_sync(request):
    total = 0
    for chunk in request.stream():
        total += len(chunk)
    return {"total": total, "thread": threading.current_thread() is not threading.main_thread()}


@app.post("/stream/early", stream=True)
async def stream_early(request):
    return {"answered": "before the body"}


@app.get("/events")
def events(request, tag: str):
    return {"events": EVENTS.get(tag, [])}


@app.post("/starlette")
async def starlette_style(request):
    body = await request.body()
    data = await request.json()
    return {"body": body.decode(), "json": data, "seed": request.body.decode()}


@app.post("/starlette/form")
async def starlette_form(request):
    form = await request.form()
    upload = form.get("f")  # Starlette's way to an upload: an item of the form
    result = {"fields": {k: v for k, v in form.items() if isinstance(v, str)},
              "files": {k: [f.filename for f in v] for k, v in form.files.items()},
              "f": (upload.filename, await upload.read()).__repr__() if upload is not None else None}
    await form.close()
    return result


@app.post("/compat")
def compat(request):
    # Catzilla 0.2.3's names, in a def handler
    return {"text": request.text(), "json": request.json() if request.body[:1] in (b"", b"{") else None,
            "client_ip": request.client_ip,
            "body_type": type(request.body).__mro__[1].__name__}


@app.post("/compat/async")
async def compat_async(request):
    data = request.json()  # 0.2.3 style: no await, in an async handler
    return {"json": dict(data) if isinstance(data, dict) else data, "text": request.text(),
            "client_ip": request.client_ip}


@app.get("/url/{rest:path}")
def url_parts(request, rest: str):
    url = request.url
    return {"str": str(url), "path": url.path, "query": url.query, "scheme": url.scheme,
            "netloc": url.netloc, "hostname": url.hostname, "port": url.port}


@app.get("/pid")
def pid(request):
    return {"pid": os.getpid()}


@app.post("/plain")
def plain(request):
    return {"size": len(request.body)}


@app.post("/big", max_body_size=32 * 1024 * 1024)
def big(request):
    return {"size": len(request.body)}


@app.post("/stream/small", stream=True, max_body_size=1000)
async def stream_small(request):
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return {"total": total}


@app.post("/stream/whole", stream=True)
async def stream_whole(request):
    before = len(request.body)
    body = await request.body()  # Starlette's: reads the stream whole
    return {"before": before, "size": len(body), "after": len(request.body), "json": request.json()}


@app.post("/stream/form", stream=True)
async def stream_form(request):
    # Starlette's style on a streaming route: the form is parsed as the body arrives
    form = await request.form()
    upload = form["file"]
    return {"size": upload.size, "on_disk": upload.on_disk, "note": form.get("note"),
            "body": len(request.body)}
