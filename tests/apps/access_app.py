"""App for tests/test_access_log.py: a handler of the user's own on catzilla.access."""
import logging
import os

from catzilla import Catzilla

app = Catzilla()


@app.on_startup
def attach_handler():
    handler = logging.FileHandler(os.environ["ACCESS_FILE"])
    handler.setFormatter(logging.Formatter("%(method)s %(path)s %(status)s"))
    logging.getLogger("catzilla.access").addHandler(handler)


@app.get("/x")
async def x(request):
    return "x"
