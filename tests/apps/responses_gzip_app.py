"""A FileResponse and a static mount behind GZipMiddleware (tests/test_responses.py): the
middleware takes the body over, so the file is streamed compressed instead of sendfile'd."""
import os

from catzilla import Catzilla
from catzilla.middleware import GZipMiddleware
from catzilla.responses import FileResponse

FILES = os.environ.get("RESPONSES_FILES", "/nonexistent")

app = Catzilla()
app.add_middleware(GZipMiddleware, minimum_size=10)


@app.get("/file/{name}")
def file(request, name: str):
    return FileResponse(os.path.join(FILES, name))


app.mount_static("/static", FILES)
