"""Catzilla 0.2.3's `catzilla.exceptions`: the upload errors its file-handling docs catch.

Both are FormError, so HTTPException too: uncaught, FileSizeError is answered 413 and
MimeTypeError 415. The server raises FileSizeError when an upload goes over the file size
limit (`max_file_size`); a handler raises either for its own rules."""
from __future__ import annotations

import typing

from .forms import FileSizeError, FormError, MimeTypeError

__all__ = ["FileSizeError", "MimeTypeError", "format_upload_error"]


def format_upload_error(error: FormError) -> dict[str, typing.Any]:
    """A JSON-ready description of an upload error, for a handler that answers it itself:
    `JSONResponse(format_upload_error(exc), status_code=exc.status_code)`."""
    return {"error": {"type": type(error).__name__, "message": str(error), "status_code": error.status_code}}
