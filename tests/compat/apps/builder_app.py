"""`response` and StreamingWriter as Catzilla 0.2.3's docs use them (our own app)."""
import csv
import time

from catzilla import Catzilla, Response, StreamingResponse, StreamingWriter, response

app = Catzilla()


@app.get("/created/{n}")
def created(request, n: int):
    time.sleep(0.01 * (n % 3))  # interleave concurrent requests in the pool
    return response.status(201 + n % 2).set_header("X-N", str(n)).json({"n": n})


@app.get("/page")
def page(request):
    return response.html("<h1>hi</h1>")


@app.get("/plain")
async def plain(request):
    return response.status(418).send("teapot")


@app.get("/rows.csv")
def rows(request):
    out = StreamingResponse(iter(()), media_type="text/csv")
    writer = StreamingWriter(out)
    table = csv.writer(writer)
    for i in range(1000):
        table.writerow([f"row-{i}", i, i * i])
    writer.close()
    return out


@app.get("/late")
def late(request):
    out = StreamingResponse(iter(()), media_type="text/plain")
    writer = StreamingWriter(out)
    writer.write("early\n")
    app.state.writer = writer  # never closed by the handler
    return out


@app.get("/late-write")
def late_write(request):
    try:
        app.state.writer.write("too late\n")
    except ValueError as exc:
        return {"error": str(exc)}
    return {"error": None}


@app.get("/login")
def login(request):
    return response.set_cookie("session", "abc", httponly=True).set_cookie("theme", "dark").json({"ok": True})


def _rows():
    yield "a,b\n"
    yield "1,2\n"


@app.get("/typed/content-type")
def typed_content_type(request):
    return StreamingResponse(_rows(), content_type="text/csv")  # 0.2.3: sent as given


@app.get("/typed/media-type")
def typed_media_type(request):
    return StreamingResponse(_rows(), media_type="text/csv")  # Starlette: charset added


@app.get("/typed/default")
def typed_default(request):
    return StreamingResponse(_rows())


@app.get("/typed/response")
def typed_response(request):
    return Response("x", content_type="text/plain; format=flowed")


@app.get("/typed/assigned")
def typed_assigned(request):
    out = Response("<p>x</p>")
    out.content_type = "text/html"
    return out
