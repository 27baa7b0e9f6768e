"""App for tests/test_access_log.py: a logging set-up of the user's own, from startup hooks.

ACCESS_FILE: a handler of the user's on catzilla.access, writing to that file.
ACCESS_FORMATTER: a format the user puts on the server's own handler instead of its formatter.
"""
import logging
import os

from catzilla import Catzilla

app = Catzilla()


@app.on_startup
def attach_handler():
    if "ACCESS_FILE" in os.environ:
        handler = logging.FileHandler(os.environ["ACCESS_FILE"])
        handler.setFormatter(logging.Formatter("%(method)s %(path)s %(status)s"))
        logging.getLogger("catzilla.access").addHandler(handler)
    if "ACCESS_FORMATTER" in os.environ:
        logging.getLogger().handlers[0].setFormatter(logging.Formatter(os.environ["ACCESS_FORMATTER"]))


@app.get("/x")
async def x(request):
    return "x"
