"""Catzilla 0.2.3's `catzilla.exceptions`: the upload errors its file-handling docs catch.

Both are FormError, so HTTPException too: uncaught, FileSizeError is answered 413 and
MimeTypeError 415. The server raises FileSizeError when an upload goes over the file size
limit (`max_file_size`); a handler raises either for its own rules."""
from __future__ import annotations

from .forms import FileSizeError, MimeTypeError

__all__ = ["FileSizeError", "MimeTypeError"]
