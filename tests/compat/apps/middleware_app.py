"""Middleware and hooks as Catzilla 0.2.3's docs write them (our own app)."""
from typing import Optional

from catzilla import Catzilla, JSONResponse, Request, Response
from catzilla.router import RouterGroup

app = Catzilla(production=True)
ORDER = []


@app.middleware(priority=50, pre_route=True, name="timing")  # the default priority, named
def timing(request: Request) -> Optional[Response]:
    request.state = getattr(request, "state", {})  # 0.2.3's dict-like state
    request.state["seen"] = ["timing"]
    return None


@app.middleware(priority=10, pre_route=True, name="auth")
def auth(request: Request) -> Optional[Response]:
    if not hasattr(request, "context"):
        request.context = {}
    request.context["user"] = request.headers.get("x-user")
    if request.path.startswith("/admin") and request.context["user"] != "root":
        return JSONResponse({"error": "Authentication required"}, status_code=401)
    return None


@app.middleware(priority=20, pre_route=False, post_route=True, name="count")
def count(request: Request) -> Optional[Response]:  # post_route taking only the request
    ORDER.append(request.path)
    return None


admin = RouterGroup(prefix="/admin")


@admin.get("/panel")
def panel(request):
    return {"user": request.context["user"]}


app.include_routes(admin)


@app.get("/")
async def home(request):
    return {"seen": request.state["seen"], "user": request.context.get("user"), "production": app.production,
            "after_hooks_so_far": len(ORDER), "stats": app.get_middleware_stats()["pre_route"]}


@app.get("/agent")
def agent(request):
    return {"agent": request.get_header("User-Agent"), "missing": request.get_header("x-none", "default")}


def require_key(request: Request) -> Optional[Response]:
    if request.headers.get("x-key") != "k":
        return JSONResponse({"error": "key required"}, status_code=403)
    return None


def tag(request: Request) -> Optional[Response]:
    request.context.setdefault("tags", []).append("route")
    return None


keyed = RouterGroup(prefix="/keyed", middleware=[require_key])


@keyed.get("/thing", middleware=[tag])
def thing(request):
    return {"tags": request.context["tags"]}


app.include_routes(keyed)
