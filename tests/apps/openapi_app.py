"""An app whose OpenAPI document the tests read: parameters of every source with
constraints and descriptions, JSON, form and multipart bodies, models, a router with a
prefix and tags, and a route left out of the schema."""
from __future__ import annotations

import typing

import msgspec

from catzilla import APIRouter, Catzilla, File, Form, Header, Path, Query, UploadFile
from catzilla.params import Cookie
from catzilla.responses import HTMLResponse


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


class Receipt(msgspec.Struct):
    item: Item
    total: float


app = Catzilla(title="Shop API", version="2.1.0", description="Items for sale.")
items = APIRouter(prefix="/items", tags=["items"])


@items.get("/{item_id}")
async def read_item(request, item_id: int = Path(..., ge=1, description="The item's number"),
                    q: str | None = Query(None, max_length=20, description="A search word"),
                    limit: int = Query(10, ge=0, le=100),
                    x_token: str = Header(...), session: str | None = Cookie(None)) -> Item:
    """Read one item.

    Looks it up by number."""
    return Item(name="x", price=1.0)


@items.post("/")
async def create_item(request, item: Item) -> Receipt:
    return Receipt(item=item, total=item.price)


app.include_router(items, prefix="/v1")


@app.post("/login")
def login(request, username: str = Form(...), password: str = Form(...)):
    return {"user": username}


@app.post("/upload")
def upload(request, file: UploadFile = File(...), note: str = Form("")):
    return {"size": len(file.read())}


@app.get("/page")
async def page(request) -> HTMLResponse:
    return HTMLResponse("<p>hi</p>")


@app.get("/plain")
async def plain(request) -> str:
    return "text"


@app.get("/tags")
async def many(request, tag: list[str] = Query([])) -> list[str]:
    return tag


@app.get("/hidden")
async def hidden(request):
    return {}


hidden.include_in_schema = False  # type: ignore[attr-defined]

NOT_DOCUMENTED: typing.Final = "/hidden"
