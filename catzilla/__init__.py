"""Catzilla: `def` handlers in a thread pool, `async def` handlers on the event loop."""
from .app import Catzilla
from .datastructures import Headers, QueryParams, UploadFile
from .errors import HTTPException, RequestValidationError
from .params import Body, Cookie, Depends, File, Form, Header, Path, Query
from .request import Request
from .routers import APIRouter, Router, RouterGroup
from .cache import (
    ConditionalCacheMiddleware, SmartCache, SmartCacheConfig, SmartCacheMiddleware, cached,
    create_api_cache_middleware, create_page_cache_middleware, create_static_cache_middleware,
    get_cache, reset_cache,
)
from .memory import (
    disable_memory_profiling, enable_memory_profiling, get_allocator_info, get_memory_stats,
    is_jemalloc_available, is_jemalloc_enabled, memory_usage_mb, optimize_memory, reset_memory_stats,
)
from .dependency_injection import (
    DIContainer, DIContext, create_context, get_default_container, inject, register_service,
    resolution_context, resolve_service, service, set_default_container,
)
from .response_builder import ResponseBuilder, response
from .streaming import StreamingWriter
from .validation import BaseModel, Field, ValidationError, get_performance_stats, reset_performance_stats
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
    # Catzilla 0.2.3's names (see README, "Coming from Catzilla 0.2.3")
    "App", "DIContainer", "DIContext", "create_context", "get_default_container", "inject",
    "register_service", "resolution_context", "resolve_service", "service", "set_default_container",
    "SmartCache", "SmartCacheConfig", "SmartCacheMiddleware", "ConditionalCacheMiddleware", "cached",
    "create_api_cache_middleware", "create_page_cache_middleware", "create_static_cache_middleware",
    "get_cache", "reset_cache", "get_memory_stats", "memory_usage_mb", "is_jemalloc_available",
    "is_jemalloc_enabled", "get_allocator_info", "optimize_memory", "reset_memory_stats",
    "enable_memory_profiling", "disable_memory_profiling",
    "ResponseBuilder", "response", "StreamingWriter",
    "BaseModel", "Field", "ValidationError", "get_performance_stats", "reset_performance_stats",
]

App = Catzilla  # Catzilla 0.2.3's other name for the application class
