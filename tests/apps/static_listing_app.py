"""Catzilla 0.2.3's mount_static with a directory listing (tests/test_static.py)."""
import os

from catzilla import Catzilla

app = Catzilla()
app.mount_static("/files", os.environ["LISTING_DIR"], enable_directory_listing=True, index_file="none.html")

# A root mount too (Starlette's StaticFiles), for the open-redirect check.
from catzilla.staticfiles import StaticFiles  # noqa: E402

StaticFiles(directory=os.environ["LISTING_DIR"]).attach(app, "/")
