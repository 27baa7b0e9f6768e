"""App for tests/test_dependencies.py: Annotated markers, pydantic bodies, Depends (cached,
uncached, yield, failing), dependencies on the app, a router and a decorator, and the
decorator keywords that shape responses."""
from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Annotated, Optional

import msgspec
from pydantic import BaseModel, Field

from catzilla import (
    APIRouter, Body, Catzilla, Cookie, Depends, Header, HTTPException, JSONResponse, Path, Query,
    Request,
)
from catzilla.dependencies import set_service_resolver
from catzilla.responses import HTMLResponse

# What dependencies did, read back through GET /events (the tests run one worker).
EVENTS: list[str] = []
CALLS: dict[str, int] = {}


def count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


async def app_dependency(request: Request) -> None:
    request.state.app_dependency = True


app = Catzilla(dependencies=[Depends(app_dependency)])


@app.get("/events")
async def events():
    return {"events": EVENTS, "calls": CALLS}


@app.post("/events/reset")
async def reset():
    EVENTS.clear()
    CALLS.clear()
    return {}


# --- Annotated markers ----------------------------------------------------------------------

@app.get("/ann/query")
async def ann_query(n: Annotated[int, Query(ge=2)], q: Annotated[str, Query(max_length=3)] = "abc"):
    return {"n": n, "q": q}


@app.get("/ann/header")
async def ann_header(x_token: Annotated[str, Header()], user_agent: Annotated[Optional[str], Header()] = None):
    return {"x_token": x_token, "user_agent": user_agent}


@app.get("/ann/cookie")
def ann_cookie(session: Annotated[Optional[str], Cookie()] = None, theme: Annotated[str, Cookie(alias="ui-theme")] = "light"):
    return {"session": session, "theme": theme}


@app.get("/ann/path/{item_id}")
async def ann_path(item_id: Annotated[int, Path(gt=0, le=100)]):
    return {"item_id": item_id}


# --- pydantic bodies ------------------------------------------------------------------------

class Item(BaseModel):
    name: str = Field(min_length=2)
    price: float = Field(gt=0)
    quantity: int


@app.post("/pydantic/item")
async def pydantic_item(item: Item):
    return {"name": item.name, "total": item.price * item.quantity}


@app.post("/pydantic/items")
def pydantic_items(items: list[Item]):
    return {"count": len(items), "names": [i.name for i in items]}


@app.post("/pydantic/embedded")
async def pydantic_embedded(item: Annotated[Item, Body(embed=True)], note: Annotated[str, Body()] = ""):
    return {"name": item.name, "note": note}


# --- dependencies ---------------------------------------------------------------------------

def common(q: Optional[str] = None, skip: int = 0, limit: Annotated[int, Query(le=100)] = 10):
    return {"q": q, "skip": skip, "limit": limit}


@app.get("/deps/common")
async def deps_common(commons: Annotated[dict, Depends(common)]):
    return commons


class Pager:
    def __init__(self, page: int = 1, size: int = 20) -> None:
        self.page, self.size = page, size


@app.get("/deps/class")
def deps_class(pager: Annotated[Pager, Depends()]):
    return {"page": pager.page, "size": pager.size}


def counted_user(request: Request) -> str:
    count("user")
    return request.headers.get("x-user", "anonymous")


def counted_db() -> str:
    count("db")
    return "db"


def needs_user_and_db(user: str = Depends(counted_user), db: str = Depends(counted_db)) -> str:
    return f"{user}@{db}"


@app.get("/deps/cached")
def deps_cached(user: str = Depends(counted_user), both: str = Depends(needs_user_and_db),
                fresh: str = Depends(counted_db, use_cache=False)):
    return {"user": user, "both": both, "fresh": fresh}


# Thread identity: every def dependency and the def handler in one pool job.
def thread_a() -> int:
    return threading.get_ident()


def thread_b(a: int = Depends(thread_a)) -> tuple[int, int]:
    return a, threading.get_ident()


def thread_gen():
    yield threading.get_ident()
    EVENTS.append(f"thread_gen cleaned up in {'same' if threading.get_ident() == CLEANUP_THREAD[0] else 'other'}")


CLEANUP_THREAD = [0]


@app.get("/deps/threads")
def deps_threads(b: tuple = Depends(thread_b), g: int = Depends(thread_gen)):
    CLEANUP_THREAD[0] = threading.get_ident()
    return {"deps": [b[0], b[1], g], "handler": threading.get_ident()}


@app.get("/loop-thread")
async def loop_thread():
    return {"thread": threading.get_ident()}


# yield dependencies
def session():
    EVENTS.append("session open")
    try:
        yield "session"
    except Exception as exc:
        EVENTS.append(f"session saw {type(exc).__name__}")
        raise
    finally:
        EVENTS.append("session closed")


async def async_session():
    EVENTS.append("async session open")
    try:
        await asyncio.sleep(0)
        yield "async-session"
    except Exception as exc:
        EVENTS.append(f"async session saw {type(exc).__name__}")
        raise
    finally:
        EVENTS.append("async session closed")


@app.get("/yield/sync")
def yield_sync(s: str = Depends(session)):
    EVENTS.append("handler")
    return {"session": s}


@app.get("/yield/async")
async def yield_async(s: str = Depends(async_session), t: str = Depends(session)):
    EVENTS.append("handler")
    return {"sessions": [s, t]}


@app.get("/yield/handler-raises")
def yield_handler_raises(s: str = Depends(session)):
    raise HTTPException(409, "conflict in handler")


@app.get("/yield/handler-crashes")
async def yield_handler_crashes(s: str = Depends(session)):
    raise ValueError("boom")


def broken_cleanup():
    yield "value"
    EVENTS.append("broken cleanup ran")
    raise RuntimeError("clean-up failed")


@app.get("/yield/cleanup-raises")
def yield_cleanup_raises(v: str = Depends(broken_cleanup)):
    EVENTS.append("handler")
    return {"v": v}


# failing dependencies
def forbidden(x_key: Annotated[Optional[str], Header()] = None):
    if x_key != "secret":
        raise HTTPException(403, "bad key", headers={"x-why": "key"})
    return x_key


def crashing():
    raise ZeroDivisionError("dependency crashed")


@app.get("/deps/forbidden")
def deps_forbidden(key: str = Depends(forbidden)):
    return {"key": key}


@app.get("/deps/crash")
async def deps_crash(value: int = Depends(crashing)):
    return {"value": value}


@app.get("/deps/errors")
async def deps_errors(commons: dict = Depends(common), n: int = Query()):
    return {"n": n}


# async dependencies around a def handler, and def ones around an async def one
async def async_value() -> str:
    await asyncio.sleep(0)
    return "async"


@app.get("/deps/mixed-sync")
def deps_mixed_sync(a: str = Depends(async_value), t: int = Depends(thread_a)):
    return {"a": a, "same_thread": t == threading.get_ident()}


@app.get("/deps/mixed-async")
async def deps_mixed_async(t: int = Depends(thread_a), a: str = Depends(async_value)):
    return {"a": a, "pool": t != threading.get_ident()}


# dependencies on a router and on the decorator
def router_dependency(x_router: Annotated[Optional[str], Header()] = None):
    if x_router == "deny":
        raise HTTPException(401, "router said no")
    EVENTS.append("router dependency")


def decorator_dependency():
    EVENTS.append("decorator dependency")


router = APIRouter(prefix="/router", dependencies=[Depends(router_dependency)])


@router.get("/item", dependencies=[Depends(decorator_dependency)])
def router_item(request: Request):
    EVENTS.append("handler")
    return {"app_dependency": request.state.app_dependency}


app.include_router(router)


# Depends("name"): Catzilla 0.2.3's services, through the resolver hook
@app.get("/service")
def service(db: str = Depends("database")):
    return {"db": db}


@app.post("/service/install")
def install_resolver():
    set_service_resolver(lambda name, request: f"service:{name}")
    return {}


# --- decorator keywords ---------------------------------------------------------------------

class UserOut(msgspec.Struct):
    name: str
    email: str


@dataclasses.dataclass
class Account:
    name: str
    email: str
    secret: str


class PublicUser(BaseModel):
    name: str


@app.get("/shape/model", response_model=UserOut)
def shape_model():
    return {"name": "ann", "email": "ann@example.com", "secret": "hunter2"}


@app.get("/shape/annotation")
async def shape_annotation() -> UserOut:
    return Account("bob", "bob@example.com", "hunter2")  # type: ignore[return-value]


@app.get("/shape/list", response_model=list[UserOut])
async def shape_list():
    return [{"name": "a", "email": "a@x", "secret": "1"}, {"name": "b", "email": "b@x", "secret": "2"}]


@app.get("/shape/pydantic", response_model=PublicUser)
async def shape_pydantic():
    return {"name": "carol", "secret": "hunter2"}


@app.get("/shape/wrong", response_model=UserOut)
async def shape_wrong():
    return {"name": "no email"}


@app.get("/shape/response-passes", response_model=UserOut)
async def shape_response_passes():
    return JSONResponse({"anything": True}, status_code=202)


@app.post("/created", status_code=201, tags=["items"], summary="Create", description="Makes one.",
          responses={409: {"description": "exists"}}, deprecated=True, include_in_schema=False,
          name="create_item", cpu_bound=True)
def created(item: Annotated[dict, Body()]):
    return {"created": item}


@app.delete("/gone", status_code=204)
async def gone():
    return None


@app.get("/html", response_class=HTMLResponse)
async def html():
    return "<p>hi</p>"


# --- dependencies inside a chain (a router with a hook: the pipeline, not the direct path) -

def hooked(request: Request):
    EVENTS.append("hook")  # a def hook around a def handler: in the same pool job
    request.state.hook_thread = threading.get_ident()


chained = APIRouter(prefix="/chained")
chained.before_request(hooked)


@chained.get("/threads")
def chained_threads(request: Request, b: tuple = Depends(thread_b), s: str = Depends(session)):
    return {"threads": [request.state.hook_thread, b[0], b[1], threading.get_ident()]}


@chained.get("/mixed")
def chained_mixed(a: str = Depends(async_value), s: str = Depends(async_session)):
    EVENTS.append("handler")
    return {"a": a, "s": s}


@chained.get("/forbidden", status_code=202)
async def chained_forbidden(key: str = Depends(forbidden)):
    return {"key": key}


app.include_router(chained)


# --- a timed-out request still cleans up --------------------------------------------------

async def slow_session():
    EVENTS.append("slow session open")
    try:
        yield "slow"
    finally:
        EVENTS.append("slow session closed")


@app.get("/yield/timeout", timeout=0.3)
async def yield_timeout(s: str = Depends(slow_session)):
    await asyncio.sleep(5)
    return {"never": True}
