"""App for tests/test_phased.py: the same routes behind middleware in two halves
(PhasedMiddleware), one that runs as one plain call and one that suspends (a Task), so the
two ways of running a chain can be compared answer for answer."""
from __future__ import annotations

import asyncio
import contextvars
import time

from catzilla import Catzilla, HTTPException, JSONResponse, PlainTextResponse, Router
from catzilla.middleware import CORSMiddleware, Middleware
from catzilla.middleware.base import PhasedMiddleware

seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")
handled: contextvars.ContextVar[str] = contextvars.ContextVar("handled", default="unset")


class Mark(PhasedMiddleware):
    """Appends its name to x-order on the way in (in request.state) and out (a header)."""

    def __init__(self, app, name: str, answer_on: str | None = None) -> None:
        super().__init__(app)
        self.name, self.answer_on = name, answer_on

    def on_request(self, request):
        request.state.order = getattr(request.state, "order", "") + f">{self.name}"
        if self.answer_on is not None and request.query_params.get("answer") == self.answer_on:
            return PlainTextResponse(f"answered by {self.name}")
        return self.name

    def on_response(self, request, response, name):
        assert name == self.name
        if request.query_params.get("fail") == self.name:
            raise RuntimeError(f"{self.name} failed after")
        previous = response.headers.get("x-order", "")
        response.headers["x-order"] = f"{previous}<{name}"
        return response


class OwnDispatch(CORSMiddleware):
    """A CORS subclass with its own dispatch: run as any middleware, halves not used."""

    async def dispatch(self, request, call_next):
        response = await super().dispatch(request, call_next)
        response.headers["x-own-dispatch"] = "1"
        return response


class Blocker(PhasedMiddleware):
    """Blocks the loop on its way in when asked: the detector must name it."""

    def on_request(self, request):
        if request.headers.get("x-block"):
            time.sleep(0.3)


class Teapot(Exception):
    pass


app = Catzilla()
app.add_middleware(Mark, name="app", answer_on="app")
app.add_middleware(CORSMiddleware, allow_origins=["https://a.example"], allow_credentials=True)


@app.exception_handler(Teapot)
async def teapot(request, exc):
    return JSONResponse({"teapot": True}, 418)


@app.before_request
async def before(request):
    seen.set("before")
    if request.query_params.get("raise") == "before":
        raise Teapot()
    if request.query_params.get("raise") == "unhandled":
        raise ValueError("not handled anywhere")
    if request.query_params.get("short"):
        return PlainTextResponse("short-circuited")
    return None


@app.after_request
async def after(request, response):
    response.headers["x-seen-after"] = seen.get()
    return response


router = Router(middleware=[Middleware(Mark, name="router", answer_on="router")])


@router.get("/inline", middleware=[Mark(None, "route")])
async def inline(request):
    handled.set("leaked")
    return {"order": request.state.order, "seen": seen.get()}


@router.get("/suspends", middleware=[Mark(None, "route")])
async def suspends(request):
    await asyncio.sleep(0)
    return {"order": request.state.order, "seen": seen.get()}


@router.get("/exit", middleware=[Mark(None, "route")])
async def exit_(request):
    raise SystemExit(3)


@router.get("/http-error", middleware=[Mark(None, "route")])
async def http_error(request):
    raise HTTPException(409, "taken")


@router.get("/blocking", middleware=[Blocker(None)])
async def blocking(request):
    return {"ok": True}


app.include_router(router)

own = Catzilla()
own.add_middleware(OwnDispatch, allow_origins=["https://a.example"])


@own.get("/")
async def own_root(request):
    return {"ok": True}


@app.get("/handled")
async def read_handled(request):
    return PlainTextResponse(handled.get())
