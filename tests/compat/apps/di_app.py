"""Named services as Catzilla 0.2.3's docs use them (our own app)."""
import itertools
import os
import threading

from catzilla import Catzilla, Depends, JSONResponse, Path, inject, service
from catzilla.dependency_injection import set_default_container

app = Catzilla(enable_di=True)
set_default_container(app.di_container)
_serial = itertools.count(1)


@service("config", scope="singleton")
class Config:
    def __init__(self) -> None:
        self.serial = next(_serial)
        self.pid = os.getpid()


@service("request_ctx", scope="request")
class RequestContext:
    def __init__(self, config: Config) -> None:  # found by its annotation
        self.serial = next(_serial)
        self.config = config
        self.seen: list[str] = []


@service("stamp", scope="transient")
def make_stamp() -> int:
    return next(_serial)


class Repository:
    def __init__(self, ctx, config) -> None:  # found by their names
        self.ctx = ctx
        self.config = config

    def find(self, item_id: int) -> dict:
        self.ctx.seen.append("repository")
        return {"id": item_id}


app.register_service("repo", Repository, scope="request", dependencies=["config"])
app.register_service("ctx", lambda: app.resolve_service("request_ctx"), scope="request")


@app.middleware(priority=10, pre_route=True)
async def note_on_the_loop(request):
    # on the event loop, before the def handler runs in the pool
    ctx = app.di_container.resolve("request_ctx")
    ctx.seen.append(f"loop:{threading.current_thread().name}")
    return None


@app.get("/items/{item_id}")
@inject("repo", "request_ctx", "config", "stamp")
def get_item(request, repo, request_ctx, config, stamp, item_id: int = Path(..., ge=1)):
    request_ctx.seen.append(f"pool:{threading.current_thread().name}")
    again = app.resolve_service("request_ctx")
    return JSONResponse({
        "item": repo.find(item_id),
        "request_ctx": request_ctx.serial,
        "same_in_handler": again is request_ctx,
        "same_in_repository": repo.ctx is request_ctx,
        "seen": request_ctx.seen,
        "config": config.serial,
        "config_pid": config.pid,
        "stamps": [stamp, app.resolve_service("stamp")],
    })


@app.get("/async/{item_id}")
@inject("repo")
async def get_item_async(request, repo, item_id: int):
    return {"item": repo.find(item_id), "services": app.di_container.list_services()}


@service("greeter")
class Greeter:
    def __init__(self, config: Config = Depends("config")) -> None:  # 0.2.3's constructor style
        self.config = config

    def greet(self, name: str) -> str:
        return f"Hello, {name}!"


@app.get("/welcome/{name}")
def welcome(request, greeter: Greeter = Depends("greeter"), ctx: RequestContext = Depends("request_ctx"),
            name: str = Path(...)):
    return {"message": greeter.greet(name), "same_ctx": ctx is app.resolve_service("request_ctx"),
            "config": greeter.config.serial}


@app.get("/async-welcome/{name}")
async def async_welcome(request, name: str, greeter: Greeter = Depends("greeter"),
                        ctx: RequestContext = Depends("request_ctx")):
    return {"message": greeter.greet(name), "same_ctx": ctx is app.resolve_service("request_ctx")}


@app.get("/missing")
def missing(request, nothing=Depends("no_such_service")):
    return {}


CLOSED = []


@service("session", scope="request")
class Session:
    def __init__(self) -> None:
        self.serial = next(_serial)

    def close(self) -> None:
        CLOSED.append(self.serial)


@app.get("/session")
def session(request, s: Session = Depends("session")):
    return {"serial": s.serial, "closed": list(CLOSED)}
