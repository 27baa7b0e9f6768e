"""App for tests/test_params.py: every parameter kind of DESIGN.md section 3, the Request
object, return value conversion, errors and schedule_task."""
from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Annotated, List, Optional

import msgspec

from catzilla import (
    Body, Catzilla, Cookie, File, Form, Header, HTMLResponse, HTTPException, JSONResponse,
    Path, PlainTextResponse, Query, Request, Response, StreamingResponse, UploadFile,
)
from catzilla.background_tasks import schedule_task

app = Catzilla()

# What background tasks did, read back through GET /bg/events.
EVENTS: list[dict] = []


class Item(msgspec.Struct):
    name: str
    price: float
    tags: List[str] = []


@dataclasses.dataclass
class User:
    username: str
    age: int


# --- path parameters ---------------------------------------------------------------------

@app.get("/path/int/{item_id}")
def path_int(request, item_id: int):
    return {"item_id": item_id, "type": type(item_id).__name__,
            "path_params": request.path_params}


@app.get("/path/float/{value}")
async def path_float(request, value: float):
    return {"value": value, "type": type(value).__name__}


@app.get("/path/str/{name}")
def path_str(request, name: str):
    return {"name": name, "type": type(name).__name__}


@app.get("/path/two/{a}/sub/{b}")
def path_two(request, a: int, b: str):
    return {"a": a, "b": b}


@app.get("/path/marker/{item_id}")
def path_marker(request, item_id: int = Path(..., ge=1, le=100)):
    return {"item_id": item_id}


@app.get("/path/file/{file_path:path}")
def path_converter(request, file_path: str):
    return {"file_path": file_path}


# --- query parameters --------------------------------------------------------------------

@app.get("/query/plain")
def query_plain(request, q: int, name: Optional[str] = None, page: int = 1, ratio: float = 0.5):
    return {"q": q, "name": name, "page": page, "ratio": ratio}


@app.get("/query/bool")
async def query_bool(request, flag: bool):
    return {"flag": flag}


@app.get("/query/bool-default")
def query_bool_default(request, flag: bool = False):
    return {"flag": flag}


@app.get("/query/constraints")
def query_constraints(
    request,
    ge_v: int = Query(0, ge=0),
    gt_v: int = Query(1, gt=0),
    le_v: float = Query(10.0, le=10),
    lt_v: float = Query(0.0, lt=10),
    short: str = Query("abc", min_length=3),
    long: str = Query("abc", max_length=5),
    code: str = Query("AB12", pattern=r"^[A-Z]{2}[0-9]{2}$"),
    aliased: str = Query("none", alias="item-query"),
):
    return {"ge_v": ge_v, "gt_v": gt_v, "le_v": le_v, "lt_v": lt_v, "short": short,
            "long": long, "code": code, "aliased": aliased}


@app.get("/query/required-marker")
async def query_required_marker(request, token: str = Query(..., min_length=2)):
    await asyncio.sleep(0)
    return {"token": token}


@app.get("/query/list")
def query_list(request, ids: List[int] = Query(...), tags: List[str] = Query([])):
    return {"ids": ids, "tags": tags}


# --- headers and cookies -------------------------------------------------------------------

@app.get("/headers")
def headers(
    request,
    user_agent: str = Header(...),
    x_token: Optional[str] = Header(None),
    custom: str = Header("dflt", alias="X-Custom-Name"),
    count: int = Header(0, alias="X-Count"),
):
    return {"user_agent": user_agent, "x_token": x_token, "custom": custom, "count": count}


@app.get("/headers/no-convert")
def headers_no_convert(request, x_raw_name: Optional[str] = Header(None, convert_underscores=False)):
    return {"x_raw_name": x_raw_name}


@app.get("/cookies")
async def cookies(request, session: str = Cookie(...), theme: str = Cookie("light"),
                  visits: int = Cookie(0)):
    return {"session": session, "theme": theme, "visits": visits}


# --- bodies --------------------------------------------------------------------------------

@app.post("/body/dict")
def body_dict(request, payload: dict):
    return {"got": payload, "type": type(payload).__name__}


@app.post("/body/list")
async def body_list(request, payload: list):
    return {"got": payload, "len": len(payload)}


@app.post("/body/list-int")
def body_list_int(request, numbers: List[int]):
    return {"sum": sum(numbers), "count": len(numbers)}


@app.post("/body/struct")
def body_struct(request, item: Item):
    return {"name": item.name, "price": item.price, "tags": item.tags,
            "type": type(item).__name__}


@app.post("/body/dataclass")
async def body_dataclass(request, user: User):
    return {"username": user.username, "age": user.age, "type": type(user).__name__,
            "is_dataclass": dataclasses.is_dataclass(user)}


@app.post("/body/embed")
def body_embed(request, item: Item = Body(..., embed=True)):
    return {"name": item.name, "price": item.price}


@app.post("/body/multi")
def body_multi(request, item: Item = Body(...), user: User = Body(...)):
    return {"item": item.name, "user": user.username}


@app.post("/body/scalar")
def body_scalar(request, importance: int = Body(...)):
    return {"importance": importance}


@app.post("/body/with-query")
def body_with_query(request, item: Item, q: int):
    return {"item": item.name, "q": q}


# --- forms and files -------------------------------------------------------------------------

@app.post("/form")
def form(request, username: str = Form(...), age: int = Form(...), remember: bool = Form(False)):
    return {"username": username, "age": age, "remember": remember}


def _describe(file) -> dict:
    first = file.read(3)
    rest = file.read()
    return {"filename": file.filename, "content_type": file.content_type, "size": file.size,
            "first3": list(first), "data": (first + rest).decode("latin-1"),
            "class": type(file).__name__}


@app.post("/upload/sync")
def upload_sync(request, file=File(...), note: str = Form("")):
    return {**_describe(file), "note": note, "thread": threading.current_thread().name,
            "main": threading.current_thread() is threading.main_thread()}


@app.post("/upload/async")
async def upload_async(request, file: UploadFile = File(...), note: str = Form("")):
    await asyncio.sleep(0)
    return {**_describe(file), "note": note,
            "main": threading.current_thread() is threading.main_thread()}


@app.post("/upload/annotated")
def upload_annotated(request, file: UploadFile):
    return _describe(file)


@app.post("/upload/many")
def upload_many(request, files: List[UploadFile] = File(...)):
    return {"names": [f.filename for f in files], "sizes": [f.size for f in files]}


# --- the Request object ----------------------------------------------------------------------

@app.route("/request/{thing}", methods=["GET", "POST", "PUT"])
def inspect_request(request: Request, thing: str):
    request.state.marker = "set-in-handler"
    try:
        request.state.absent
        state_missing = "no error"
    except AttributeError:
        state_missing = "AttributeError"
    json_body = None
    if request.headers.get("content-type", "").startswith("application/json"):
        json_body = request.json()
    return {
        "method": request.method,
        "path": request.path,
        "query_x": request.query_params.getlist("x"),
        "query_last_x": request.query_params.get("x"),
        "query_y": request.query_params.get("y"),
        "query_missing": request.query_params.get("nope", "dflt"),
        "path_params": request.path_params,
        "header_lower": request.headers.get("x-mixed-case"),
        "header_upper": request.headers.get("X-MIXED-CASE"),
        "header_default": request.headers.get("x-absent", "fallback"),
        "header_in": "X-Mixed-Case" in request.headers,
        "body_type": "bytes" if isinstance(request.body, bytes) else type(request.body).__name__,
        "body_len": len(request.body),
        "body_hex": request.body.hex(),
        "json": json_body,
        "cookies": dict(request.cookies),
        "client_host": request.client.host,
        "client_port": request.client.port,
        "state_marker": request.state.marker,
        "state_missing": state_missing,
    }


@app.get("/request-async")
async def inspect_request_async(request):
    await asyncio.sleep(0)
    request.state.count = 41
    request.state.count += 1
    return {"method": request.method, "path": request.path, "state": request.state.count,
            "ua": request.headers.get("USER-AGENT")}


# --- return values -----------------------------------------------------------------------------

@app.get("/ret/dict")
def ret_dict(request):
    return {"a": 1, "nested": {"b": [1, 2]}}


@app.get("/ret/list")
async def ret_list(request):
    return [1, "two", None, True]


@app.get("/ret/str")
def ret_str(request):
    return "héllo text"


@app.get("/ret/bytes")
async def ret_bytes(request):
    return b"\x00\x01raw\xff"


@app.get("/ret/struct")
def ret_struct(request):
    return Item(name="widget", price=2.5)


@app.get("/ret/plain")
def ret_plain(request):
    return PlainTextResponse("plain body", status_code=202, headers={"X-Kind": "plain"})


@app.get("/ret/html")
async def ret_html(request):
    return HTMLResponse("<h1>Hi</h1>")


@app.get("/ret/custom")
def ret_custom(request):
    return Response(b"custom", status_code=418, headers={"X-Custom": "yes", "X-Other": "2"},
                    media_type="application/x-custom")


@app.get("/ret/json-status")
async def ret_json_status(request):
    return JSONResponse({"created": True}, status_code=201, headers={"Location": "/things/1"})


@app.get("/ret/no-content")
def ret_no_content(request):
    return Response(status_code=204)


@app.get("/ret/stream-sync")
def ret_stream_sync(request):
    def generate():
        for i in range(5):
            yield f"line {i} {threading.current_thread() is threading.main_thread()}\n"
    return StreamingResponse(generate(), media_type="text/plain", headers={"X-Stream": "sync"})


@app.get("/ret/stream-async")
async def ret_stream_async(request):
    async def generate():
        for i in range(4):
            await asyncio.sleep(0.01)
            yield b"chunk-%d;" % i
    return StreamingResponse(generate(), media_type="application/octet-stream")


# --- errors ----------------------------------------------------------------------------------

@app.get("/http-error/{code}")
def http_error(request, code: int):
    if code == 404:
        raise HTTPException(404, "Item not found", headers={"X-Error": "missing-item"})
    if code == 409:
        raise HTTPException(409, {"reason": "conflict", "ids": [1, 2]})
    raise HTTPException(code)


@app.get("/http-error-async")
async def http_error_async(request):
    await asyncio.sleep(0)
    raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})


@app.get("/crash/sync")
def crash_sync(request):
    raise RuntimeError("secret-internal-sync-9f3a")


@app.get("/crash/async")
async def crash_async(request):
    await asyncio.sleep(0)
    raise KeyError("secret-internal-async-7c1b")


@app.get("/crash/inline")
async def crash_inline(request):
    return {"x": 1 / 0}


@app.get("/only-get")
def only_get(request):
    return {"ok": True}


@app.route("/get-post", methods=["GET", "POST"])
def get_post(request):
    return {"method": request.method}


# --- background tasks ----------------------------------------------------------------------

def record_sync(token: str, request: Request, delay: float = 0.0) -> None:
    if delay:
        time.sleep(delay)
    EVENTS.append({"token": token, "fn": "sync", "responded": request.responded,
                   "main": threading.current_thread() is threading.main_thread()})


async def record_async(token: str, request: Request, *, delay: float = 0.0) -> None:
    await asyncio.sleep(delay)
    EVENTS.append({"token": token, "fn": "async", "responded": request.responded,
                   "main": threading.current_thread() is threading.main_thread()})


def failing_sync_task(token: str) -> None:
    raise ValueError(f"bg-sync-boom-{token}")


async def failing_async_task(token: str) -> None:
    await asyncio.sleep(0)
    raise LookupError(f"bg-async-boom-{token}")


@app.get("/bg/schedule-sync")
def bg_schedule_sync(request, token: str, delay: float = 0.0):
    schedule_task(record_sync, token, request, delay=delay)
    schedule_task(record_async, token, request, delay=delay)
    return {"scheduled": token, "seen_now": [e for e in EVENTS if e["token"] == token]}


@app.get("/bg/schedule-async")
async def bg_schedule_async(request, token: str, delay: float = 0.0):
    await asyncio.sleep(0)
    schedule_task(record_async, token, request, delay=delay)
    schedule_task(record_sync, token, request, delay)
    return {"scheduled": token, "seen_now": [e for e in EVENTS if e["token"] == token]}


@app.get("/bg/schedule-inline")
async def bg_schedule_inline(request, token: str, delay: float = 0.0):
    # No await: driven inline on the loop, without a Task.
    schedule_task(record_async, token, request, delay=delay)
    schedule_task(record_sync, token, request, delay)
    return {"scheduled": token, "seen_now": [e for e in EVENTS if e["token"] == token]}


@app.get("/bg/fail")
def bg_fail(request, token: str):
    schedule_task(failing_sync_task, token)
    schedule_task(failing_async_task, token)
    return {"scheduled": token}


@app.get("/bg/events")
async def bg_events(request, token: str):
    return [e for e in EVENTS if e["token"] == token]


# --- Annotated markers on the direct path (no dependencies: no pipeline) -------------------

@app.get("/annotated/{item_id}")
async def annotated_direct(request, item_id: Annotated[int, Path(ge=1)], n: Annotated[int, Query(ge=2)] = 2,
                           x_tag: Annotated[Optional[str], Header()] = None):
    return {"item_id": item_id, "n": n, "x_tag": x_tag}


@app.get("/annotated-sync")
def annotated_sync(request, n: Annotated[int, Query(ge=2, le=5)], session: Annotated[str, Cookie()] = "none"):
    return {"n": n, "session": session}


@app.post("/annotated/upload")
def annotated_upload(request, file: Annotated[UploadFile, File()], note: Annotated[str, Form(max_length=5)] = ""):
    return {"filename": file.filename, "size": file.size, "note": note}
