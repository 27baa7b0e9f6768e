"""App for tests/test_stats_websockets.py: WebSocket routes whose connections and messages
the stats block counts, and a route reading the stats contract from inside a worker."""
import os

from catzilla import Catzilla
from catzilla.core import get_handler_stats
from catzilla.websockets import WebSocket

app = Catzilla()


@app.websocket("/ws/echo")
async def echo(websocket: WebSocket):
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)
        await websocket.send_text(text[::-1])  # two out for each one in


@app.websocket("/ws/refuse")
async def refuse(websocket: WebSocket):
    await websocket.close()  # before accept(): never an open connection


@app.get("/stats")
def stats(request):
    return {"pid": os.getpid(), "websockets": get_handler_stats()["websockets"]}
