"""Form bodies: application/x-www-form-urlencoded and multipart/form-data (RFC 7578).

The body is already fully read (DESIGN.md: bodies are read before a handler runs), so the
multipart parser works on one bytes object instead of a stream.
"""
from __future__ import annotations

from ._native import parse_content_type, parse_query
from .datastructures import Headers, MultiDict, UploadFile

__all__ = ["FormError", "FormData", "parse_form"]

# A form with more parts than this is an attack on the parser, not a form.
MAX_PARTS = 1000


class FormError(ValueError):
    """The body does not parse as the form its Content-Type announces (a 400)."""


class FormData(MultiDict):
    """Text fields as a multi-dict, uploaded files in `files` (name -> list of uploads)."""

    __slots__ = ("files",)

    def __init__(self, fields: list[tuple[str, str]], files: dict[str, list[UploadFile]]) -> None:
        super().__init__(fields)
        self.files = files


def parse_form(content_type: str | None, body: bytes) -> FormData:
    media_type, params = parse_content_type(content_type or "")
    if media_type == "application/x-www-form-urlencoded":
        return FormData(parse_query(body), {})
    if media_type == "multipart/form-data":
        boundary = params.get("boundary")
        if not boundary:
            raise FormError("multipart body without a boundary")
        return _parse_multipart(body, boundary.encode("latin-1"))
    if not body:
        return FormData([], {})
    raise FormError(f"expected a form body, got Content-Type {media_type or 'none'!r}")


def _parse_multipart(body: bytes, boundary: bytes) -> FormData:
    delimiter = b"--" + boundary
    fields: list[tuple[str, str]] = []
    files: dict[str, list[UploadFile]] = {}
    start = body.find(delimiter)
    if start < 0:
        raise FormError("multipart body does not contain its boundary")
    position = start + len(delimiter)
    for _ in range(MAX_PARTS + 1):
        if body.startswith(b"--", position):
            return FormData(fields, files)  # the closing delimiter
        if not body.startswith(b"\r\n", position):
            raise FormError("malformed multipart delimiter line")
        position += 2
        end = body.find(b"\r\n" + delimiter, position)
        if end < 0:
            raise FormError("multipart body is truncated")
        _add_part(body[position:end], fields, files)
        position = end + 2 + len(delimiter)
    raise FormError(f"multipart body has more than {MAX_PARTS} parts")


def _add_part(part: bytes, fields: list[tuple[str, str]], files: dict[str, list[UploadFile]]) -> None:
    head, sep, data = part.partition(b"\r\n\r\n")
    if not sep:
        if part.startswith(b"\r\n"):  # a part with no headers at all
            head, data = b"", part[2:]
        else:
            raise FormError("multipart part without a header block")
    raw_headers = []
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            raise FormError("malformed multipart part header")
        raw_headers.append((name.strip().decode("latin-1").lower(), value.strip().decode("latin-1")))
    headers = Headers(raw_headers)
    disposition, disposition_params = parse_content_type(headers.get("content-disposition", ""))
    if disposition != "form-data" or "name" not in disposition_params:
        raise FormError("multipart part without Content-Disposition: form-data; name=...")
    name = disposition_params["name"]
    if "filename" in disposition_params:
        content_type = headers.get("content-type", "application/octet-stream")
        upload = UploadFile(disposition_params["filename"], data, content_type, headers)
        files.setdefault(name, []).append(upload)
    else:
        charset = parse_content_type(headers.get("content-type", "text/plain"))[1].get("charset", "utf-8")
        try:
            fields.append((name, data.decode(charset)))
        except (UnicodeDecodeError, LookupError):
            raise FormError(f"form field {name!r} is not valid {charset}") from None
