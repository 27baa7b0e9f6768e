"""WebSockets, proxy headers, root_path and TLS under test (tests/test_websockets.py,
tests/test_edge.py)."""
import asyncio

from catzilla import Catzilla, JSONResponse
from catzilla.routers import APIRouter
from catzilla.websockets import WebSocket, WebSocketDisconnect

app = Catzilla()
closes: list = []  # what handlers saw when their peer went away (per worker)


@app.get("/where")
def where(request):
    return JSONResponse({"client": list(request.client) if request.client else None,
                         "url": request.url, "scheme": request.scheme, "path": request.path,
                         "root_path": request.scope["root_path"], "scope_path": request.scope["path"]})


@app.get("/items/{item_id}")
def item(request, item_id: int):
    return JSONResponse({"item_id": item_id, "url": request.url})


@app.get("/plain")
def plain(request):
    return JSONResponse({"plain": True, "upgrade": request.headers.get("upgrade")})


@app.websocket("/ws/echo")
async def echo(websocket: WebSocket):
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


@app.websocket("/ws/json")
async def json_echo(websocket: WebSocket):
    await websocket.accept()
    while True:
        try:
            data = await websocket.receive_json()
        except WebSocketDisconnect:
            return
        await websocket.send_json({"got": data, "url": websocket.url})


@app.websocket("/ws/bytes")
async def bytes_echo(websocket: WebSocket):
    await websocket.accept()
    async for data in websocket.iter_bytes():
        await websocket.send_bytes(data[::-1])


@app.websocket("/ws/rooms/{room}")
async def room(websocket: WebSocket, room: str, n: int = 1):
    await websocket.accept(subprotocol=websocket.subprotocols[0] if websocket.subprotocols else None)
    await websocket.send_json({"room": room, "n": n, "path_params": websocket.path_params,
                               "client": list(websocket.client)})
    await websocket.close(4001, "bye")


@app.websocket("/ws/refuse")
async def refuse(websocket: WebSocket):
    await websocket.close()


@app.websocket("/ws/crash")
async def crash(websocket: WebSocket):
    await websocket.accept()
    await websocket.receive_text()
    raise RuntimeError("boom")


@app.websocket("/ws/wait")
async def wait(websocket: WebSocket):
    """Holds the connection; reports the close code it saw to the next /ws/last-close."""
    await websocket.accept()
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect as exc:
        closes.append(exc.code)


@app.websocket("/ws/last-close")
async def last_close(websocket: WebSocket):
    await websocket.accept()
    await asyncio.sleep(0.2)
    await websocket.send_json(closes[-1:])


router = APIRouter(prefix="/r")


@router.websocket("/ws")
async def routed(websocket: WebSocket, token: str):
    await websocket.accept()
    await websocket.send_text(f"token={token}")
app.include_router(router)


@app.websocket("/ws/never-accepts")
async def never_accepts(websocket: WebSocket):
    await asyncio.sleep(3600)


from catzilla import Depends, HTTPException  # noqa: E402
from catzilla.websockets import WebSocketException  # noqa: E402

cleanups: list = []


def user(token: str = "") -> str:
    if token != "good":
        raise HTTPException(401, "bad token")
    return "ann"


async def session():
    yield {"id": 7}
    cleanups.append("session closed")


@app.websocket("/ws/deps")
async def with_deps(websocket: WebSocket, name: str = Depends(user), state: dict = Depends(session)):
    await websocket.accept()
    await websocket.send_json({"user": name, "session": state["id"], "cleanups": len(cleanups)})
    if await websocket.receive_text() == "policy":
        raise WebSocketException(1008, "not allowed")
