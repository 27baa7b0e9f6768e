"""The app the benchmark drives: the three routes of the performance table (issue 2), and
/dict, /json as most FastAPI handlers write it (a dict returned, made a JSONResponse by us)."""
from catzilla import Catzilla, JSONResponse, Query

app = Catzilla()


@app.get("/json")
async def json_async(request):
    return JSONResponse({"message": "Hello, World!"})


@app.get("/dict")
async def dict_async(request):
    return {"message": "Hello, World!"}


@app.get("/sync")
def json_sync(request):
    return JSONResponse({"message": "Hello, World!"})


@app.get("/items/{item_id}")
async def item(request, item_id: int, q: int = Query(10, ge=0, le=1000)):
    return JSONResponse({"item_id": item_id, "q": q})
