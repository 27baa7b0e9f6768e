"""Catzilla: `def` handlers in a thread pool, `async def` handlers on the event loop."""
from .app import Catzilla
from .datastructures import Headers, QueryParams, UploadFile
from .errors import HTTPException, RequestValidationError
from .params import Body, Cookie, Depends, File, Form, Header, Path, Query
from .request import Request
from .routers import APIRouter, Router, RouterGroup
from .responses import (
    FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response,
    StreamingResponse,
)
from .websockets import WebSocket, WebSocketDisconnect, WebSocketException  # as FastAPI exports them

__version__ = "0.3.0.dev0"

__all__ = [
    "Catzilla", "Request", "Response", "JSONResponse", "PlainTextResponse", "HTMLResponse",
    "StreamingResponse", "RedirectResponse", "FileResponse", "Query", "Path", "Header", "Cookie",
    "Body", "Form", "File", "Depends",
    "UploadFile", "Headers", "QueryParams", "HTTPException", "RequestValidationError",
    "Router", "APIRouter", "RouterGroup", "WebSocket", "WebSocketDisconnect", "WebSocketException",
]
