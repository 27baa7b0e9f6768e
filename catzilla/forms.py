"""Form bodies: application/x-www-form-urlencoded and multipart/form-data (RFC 7578).

A multipart body is parsed as it arrives (python-multipart's streaming parser): the server
feeds `MultipartReceiver` each chunk of the body of a route that takes files or form
fields, so a 1 GiB upload passes through memory a chunk at a time. Each file part goes
into a SpooledTemporaryFile: memory up to the spool size, a temporary file past it. Every
resource a client could make us spend has a limit (`FormLimits`, from the server's
settings); going over one is `FormTooLarge` (413), a body that does not parse is
`FormError` (400). `parse_form` parses a body that is already whole the same way.
"""
from __future__ import annotations

import logging
import tempfile
import typing

from python_multipart.multipart import MultipartParseError, MultipartParser

from ._native import parse_content_type, parse_query
from .datastructures import DONE, Headers, MultiDict, Ready, UploadFile
from .errors import HTTPException

# python-multipart logs each malformed body as a warning; the server logs its refusal once.
logging.getLogger("python_multipart").setLevel(logging.ERROR)

__all__ = ["FormError", "FormTooLarge", "FileSizeError", "MimeTypeError", "FormData", "FormLimits", "MultipartReceiver", "parse_form",
           "multipart_boundary"]


class FormError(HTTPException, ValueError):
    """The body does not parse as the form its Content-Type announces (a 400)."""

    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(self.status, detail)

    def __str__(self) -> str:
        return str(self.detail)


class FormTooLarge(FormError):
    """The form goes over one of the server's limits (a 413)."""

    status = 413


class FileSizeError(FormTooLarge):
    """An uploaded file is larger than allowed (Catzilla 0.2.3's name, in catzilla.exceptions):
    what the server raises over `max_file_size`; a handler may raise it too (a 413)."""


class MimeTypeError(FormError):
    """An uploaded file's type is not one the handler takes (Catzilla 0.2.3's name, in
    catzilla.exceptions): raised by a handler, answered 415 unless it catches it."""

    status = 415


class FormLimits(typing.NamedTuple):
    """What one form may cost; the server's settings (see catzilla.config) fill it once."""

    max_file_size: int = 1024 ** 3  # bytes per uploaded file
    max_files: int = 1000
    max_fields: int = 1000
    max_part_header_size: int = 8192  # bytes of one part's header block
    max_field_bytes: int = 16 * 1024 * 1024  # bytes of all text fields together (memory)
    spool_size: int = 1024 * 1024  # an upload larger than this goes to a temporary file


    @classmethod
    def from_config(cls, config: typing.Any) -> "FormLimits":
        """The server's settings (catzilla.config): text fields share --max-body-size."""
        return cls(config.max_file_size, config.max_files, config.max_fields,
                   config.max_part_header_size, config.max_body_size, config.upload_spool_size)


DEFAULT_LIMITS = FormLimits()
# The limits of the server this process serves for (set by the app's use_settings): what a
# body read whole before the handler (a handler taking only the request) is parsed under.
_server_limits = DEFAULT_LIMITS


def use_server_limits(limits: FormLimits) -> None:
    global _server_limits
    _server_limits = limits


class FormData(MultiDict, Ready):
    """Every part as a multi-dict in the order they came, as Starlette's: a text field's
    value is a str, a file's an UploadFile (`form["file"]`); `files` has the uploads alone
    (name -> list). `form = request.form()` and `form = await request.form()` both give it."""

    __slots__ = ("files",)

    def __init__(self, items: list[tuple[str, typing.Any]], files: dict[str, list[UploadFile]]) -> None:
        super().__init__(items)
        self.files = files

    def close(self) -> typing.Any:
        """Close every upload (their temporary files go with them); `await form.close()` too."""
        for uploads in self.files.values():
            for upload in uploads:
                upload.file.close()
        return DONE


SPOOL_PREFIX = "catzilla-upload-"


class Spool(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """An upload's bytes: memory up to the spool size, then a named temporary file (its
    `name` is the path Catzilla 0.2.3 calls `temp_path`), removed when the upload is closed."""

    def rollover(self) -> None:
        if self._rolled:  # type: ignore[has-type]
            return
        memory = self._file  # type: ignore[has-type]
        disk = tempfile.NamedTemporaryFile(prefix=SPOOL_PREFIX)
        disk.write(memory.getvalue())
        disk.seek(memory.tell())
        self._file = disk
        self._rolled = True


def upload_dicts(form: FormData) -> dict[str, dict[str, typing.Any]]:
    """Catzilla 0.2.3's `request.files`: field name -> a dict describing its upload (the last
    one when a field repeats, as there). An upload still in memory (up to the spool size)
    is in `content`; a larger one was spooled to disk as it arrived, and is left there:
    `is_streamed` is True, `content` None and `temp_path` the temporary file's path (valid
    until the response is sent). `file` is the UploadFile either way."""
    described = {}
    for name, uploads in form.files.items():
        upload = uploads[-1]
        temp_path = upload.file.name if upload.on_disk else None
        if isinstance(temp_path, str):
            upload.file.flush()  # what the parser wrote is in the file for another reader
            content = None
        else:
            temp_path = None
            upload.file.seek(0)
            content = upload.file.read()
            upload.file.seek(0)
        described[name] = {
            "field_name": name, "filename": upload.filename, "content_type": upload.content_type,
            "size": upload.size, "content": content, "is_streamed": temp_path is not None,
            "temp_path": temp_path, "file": upload,
        }
    return described


def multipart_boundary(content_type: str | None) -> bytes | None:
    """The boundary of a multipart/form-data body, None for any other media type."""
    media_type, params = parse_content_type(content_type or "")
    if media_type != "multipart/form-data":
        return None
    boundary = params.get("boundary")
    if not boundary:
        raise FormError("multipart body without a boundary")
    return boundary.encode("latin-1")


def parse_form(content_type: str | None, body: bytes, limits: FormLimits | None = None) -> FormData:
    """A whole body as the form its Content-Type says, under `limits` (the server's when
    not given: uploads past its spool size go to disk, 0.2.3's `temp_path`)."""
    boundary = multipart_boundary(content_type)
    if boundary is not None:
        receiver = MultipartReceiver(boundary, limits or _server_limits)
        receiver.feed(body)
        return receiver.finish()
    media_type = parse_content_type(content_type or "")[0]
    if media_type == "application/x-www-form-urlencoded":
        return FormData(parse_query(body), {})
    if not body:
        return FormData([], {})
    raise FormError(f"expected a form body, got Content-Type {media_type or 'none'!r}")


class MultipartReceiver:
    """A multipart/form-data body, fed chunk by chunk (`feed`), then `finish()` -> FormData.
    On any error the uploads made so far are closed (`close`)."""

    def __init__(self, boundary: bytes, limits: FormLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.items: list[tuple[str, typing.Any]] = []  # fields and files, in order
        self.fields = 0
        self.files: dict[str, list[UploadFile]] = {}
        self.file_count = 0
        self.field_bytes = 0
        self.ended = False
        # The part being read.
        self.header_size = 0
        self.header_name = b""
        self.header_value = b""
        self.part_headers: list[tuple[str, str]] = []
        self.upload: UploadFile | None = None
        self.field_name = ""
        self.field_charset = "utf-8"
        self.field_data: list[bytes] = []
        try:
            self.parser: MultipartParser | None = MultipartParser(boundary, {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            }, max_header_size=limits.max_part_header_size, max_header_count=64)
        except (ValueError, MultipartParseError) as exc:
            raise FormError(f"malformed multipart boundary: {exc}") from None

    def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)  # type: ignore[union-attr]
        except FormError:
            self.close()
            raise
        except MultipartParseError as exc:
            self.close()
            if "Maximum header" in str(exc):  # python-multipart's own header limits
                raise FormTooLarge(f"a multipart part's header is larger than "
                                   f"{self.limits.max_part_header_size} bytes") from None
            raise FormError(f"malformed multipart body: {exc}") from None

    def finish(self) -> FormData:
        if not self.ended:
            self.close()
            raise FormError("multipart body is truncated (no closing boundary)")
        self.parser = None  # its callbacks refer back to us: no cycle keeps the uploads open
        return FormData(self.items, self.files)

    def close(self) -> None:
        self.parser = None
        if self.upload is not None:
            self.upload.file.close()
            self.upload = None
        FormData(self.items, self.files).close()

    # -- python-multipart's callbacks ----------------------------------------------------------

    def _part_begin(self) -> None:
        self.header_size = 0
        self.part_headers = []
        self.header_name = self.header_value = b""

    def _count_header(self, size: int) -> None:
        self.header_size += size
        if self.header_size > self.limits.max_part_header_size:
            raise FormTooLarge(f"a multipart part's header is larger than "
                               f"{self.limits.max_part_header_size} bytes")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self.header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self.header_value += data[start:end]

    def _header_end(self) -> None:
        self._count_header(4)  # ": " and CRLF, as a request head counts them
        self.part_headers.append((self.header_name.decode("latin-1").strip().lower(),
                                  self.header_value.decode("latin-1").strip()))
        self.header_name = self.header_value = b""

    def _headers_finished(self) -> None:
        headers = Headers(self.part_headers)
        disposition, params = parse_content_type(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in params:
            raise FormError("multipart part without Content-Disposition: form-data; name=...")
        name = params["name"]
        limits = self.limits
        if "filename" in params:
            self.file_count += 1
            if self.file_count > limits.max_files:
                raise FormTooLarge(f"more than {limits.max_files} files in one form")
            # (A SpooledTemporaryFile of max_size 0 would never roll over: 0 is disk at once.)
            spool: typing.BinaryIO = (Spool(max_size=limits.spool_size, mode="w+b") if limits.spool_size
                                      else tempfile.NamedTemporaryFile(prefix=SPOOL_PREFIX))
            self.upload = UploadFile(spool, size=0, filename=params["filename"], headers=headers,
                                     content_type=headers.get("content-type", "application/octet-stream"))
            self.files.setdefault(name, []).append(self.upload)
            self.items.append((name, self.upload))
        else:
            self.fields += 1
            if self.fields > limits.max_fields:
                raise FormTooLarge(f"more than {limits.max_fields} fields in one form")
            self.field_name = name
            self.field_charset = parse_content_type(headers.get("content-type", "text/plain"))[1].get(
                "charset", "utf-8")
            self.field_data = []

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        upload = self.upload
        if upload is not None:
            size = upload.size + end - start  # type: ignore[operator]
            if size > self.limits.max_file_size:
                raise FileSizeError(f"uploaded file {upload.filename!r} is larger than "
                                   f"{self.limits.max_file_size} bytes")
            upload.file.write(data[start:end])
            upload.size = size
        else:
            self.field_bytes += end - start
            if self.field_bytes > self.limits.max_field_bytes:
                raise FormTooLarge(f"the form's text fields are larger than "
                                   f"{self.limits.max_field_bytes} bytes together")
            self.field_data.append(data[start:end])

    def _part_end(self) -> None:
        upload = self.upload
        if upload is not None:
            upload.file.seek(0)
            self.upload = None
            return
        try:
            self.items.append((self.field_name, b"".join(self.field_data).decode(self.field_charset)))
        except (UnicodeDecodeError, LookupError):
            raise FormError(f"form field {self.field_name!r} is not valid {self.field_charset}") from None
        self.field_data = []

    def _end(self) -> None:
        self.ended = True
