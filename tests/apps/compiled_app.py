"""App for tests/test_compiled_chain.py: chains written out as one function
(Pipeline._compile_inline) with several hooks per layer, a handler with parameters, and
CORS around responses that already carry the fields CORS sets."""
from __future__ import annotations

from catzilla import Catzilla, JSONResponse, PlainTextResponse, Router
from catzilla.middleware import CORSMiddleware

app = Catzilla()
app.add_middleware(CORSMiddleware, allow_origins=["https://a.example"], expose_headers=["x-trace"])


def trace(request, step: str) -> None:
    request.state.trace = getattr(request.state, "trace", "") + step


@app.before_request
async def app_before_1(request):
    trace(request, "b1")


@app.before_request
async def app_before_2(request):
    trace(request, ",b2")
    if request.query_params.get("short") == "app":
        return "short by app"  # made a Response (to_response)


@app.after_request
async def app_after(request, response):
    response.headers["x-after"] = response.headers.get("x-after", "") + "app"


router = Router()


@router.before_request
async def router_before(request):
    trace(request, ",rb")


@router.after_request
async def router_after(request, response):
    response.headers["x-after"] = "router,"
    return response


@router.get("/items/{item_id}")
async def item(request, item_id: int, q: str = "none"):
    return {"item_id": item_id, "q": q, "trace": request.state.trace}


@router.get("/own-fields")
async def own_fields(request):
    # fields CORS also sets: its values replace these, Vary is merged
    return PlainTextResponse("own", headers={"Vary": "Accept", "Access-Control-Allow-Origin": "https://x.example",
                                             "Access-Control-Expose-Headers": "x-other"})


@router.get("/replaced")
async def replaced(request):
    response = JSONResponse({"ok": True})
    response.headers = {"x-first": "1"}
    response.headers["X-First"] = "2"
    response.headers["x-second"] = "3"
    return response


app.include_router(router)
