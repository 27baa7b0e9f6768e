"""App for tests/test_plain_binding.py: each handler twice, once with the binder compiled
for plain parameters (binding._plain_binder) and once with `general()` putting its binding
back on msgspec, so that the test can ask both the same odd questions and compare."""
from __future__ import annotations

from typing import Annotated, Optional

from catzilla import Catzilla, Path, Query, Request

app = Catzilla()


def general(path: str) -> None:
    """The twin's binding goes the general way (msgspec for every value)."""
    for route in app.router.routes:
        if route.path != path:
            continue
        binding = route.binding
        assert binding.bind != binding._bind_direct, "expected the compiled binder"
        binding.bind = binding._bind_direct
        binding.invoke = None  # (an `async def` handler's binder and call in one: PlainInvoke)


def report(request: Request, **values) -> dict:
    return {"values": values, "types": {k: type(v).__name__ for k, v in values.items()},
            "path_params": request.path_params}


def items(request, item_id: int, q: int = Query(10, ge=0, le=1000)):
    return report(request, item_id=item_id, q=q)


def named(request, name: str, code: Annotated[int, Path(gt=-1, lt=100)], tag: Optional[str] = None,
          limit: Optional[int] = None, page: int = Query(1, alias="p"), strict: int = Query(..., ge=1)):
    return report(request, name=name, code=code, tag=tag, limit=limit, page=page, strict=strict)


app.get("/fast/items/{item_id}")(items)
app.get("/slow/items/{item_id:str}")(items)
general("/slow/items/{item_id:str}")
app.get("/fast/named/{name}/{code}/end")(named)
app.get("/slow/named/{name:str}/{code:str}/end")(named)
general("/slow/named/{name:str}/{code:str}/end")


# The same as inline `async def` handlers: bound and called in one C call (PlainInvoke).
async def async_items(request, item_id: int, q: int = Query(10, ge=0, le=1000)):
    return report(request, item_id=item_id, q=q)


async def async_named(request, name: str, code: Annotated[int, Path(gt=-1, lt=100)], tag: Optional[str] = None,
                      limit: Optional[int] = None, page: int = Query(1, alias="p"), strict: int = Query(..., ge=1)):
    return report(request, name=name, code=code, tag=tag, limit=limit, page=page, strict=strict)


app.get("/afast/items/{item_id}")(async_items)
app.get("/aslow/items/{item_id:str}")(async_items)
general("/aslow/items/{item_id:str}")
app.get("/afast/named/{name}/{code}/end")(async_named)
app.get("/aslow/named/{name:str}/{code:str}/end")(async_named)
general("/aslow/named/{name:str}/{code:str}/end")
