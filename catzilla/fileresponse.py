"""`FileResponse`: a file the server sends with sendfile(2), never reading it into memory.

The handler names the file; what is sent depends on the request, so it is decided by the
worker when it writes the response (`FileResponse.plan`): validators (ETag, Last-Modified),
conditional requests (RFC 9110 13: If-Match, If-Unmodified-Since, If-None-Match,
If-Modified-Since -> 304 or 412), ranges (RFC 9110 14: one range -> 206, several ->
multipart/byteranges, If-Range), HEAD. A middleware that replaces `body_iterator` (to
compress it, say) gets the file's bytes through it instead, sent as any stream is.
"""
from __future__ import annotations

import email.utils
import mimetypes
import os
import secrets
import stat
import typing
import urllib.parse

from .responses import StreamingResponse, encode_pairs, error_response, status_line

__all__ = ["FileResponse", "FilePlan", "parse_ranges", "RangeNotSatisfiable"]

READ_CHUNK = 64 * 1024  # the streamed fallback's piece size (what Starlette reads at a time)

# What a 304 keeps of the response's own fields (RFC 9110 15.4.5); content metadata goes.
_NOT_MODIFIED_KEEPS = (b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary")


_NO_ITERATOR: tuple[bytes, ...] = ()


class RangeNotSatisfiable(Exception):
    """A Range header that is malformed or that no byte of the file satisfies."""


# The worker's instructions: status, the head (with any small body), the pieces of the body
# (bytes, or (offset, length) of the open file), and the open file (None: nothing to send
# from it). The worker closes the file.
FilePlan = tuple[int, bytes, list[typing.Union[bytes, tuple[int, int]]], typing.Optional[typing.BinaryIO]]


def parse_ranges(header: str, size: int, max_ranges: int) -> list[tuple[int, int]] | None:
    """`bytes=0-99,200-` as sorted, merged (start, end inclusive) ranges within `size`.
    None: ignore the header and send everything (another unit, or more than `max_ranges`
    ranges once merged). Raises RangeNotSatisfiable when it is malformed or satisfies nothing."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None  # a unit we do not know: RFC 9110 14.2 says ignore the header
    ranges: list[tuple[int, int]] = []
    for item in spec.split(","):
        first, dash, last = item.strip().partition("-")
        first, last = first.strip(), last.strip()
        if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == "") \
                or (first == last == ""):
            raise RangeNotSatisfiable(f"malformed range {item.strip()!r}")
        if first == "":  # the last N bytes
            suffix = int(last)
            if suffix == 0:
                continue  # satisfies nothing
            ranges.append((max(0, size - suffix), size - 1))
            continue
        start = int(first)
        if last != "" and int(last) < start:
            raise RangeNotSatisfiable(f"malformed range {item.strip()!r}")
        if start >= size:
            continue  # beyond the end: unsatisfiable on its own
        end = size - 1 if last == "" else int(last)
        ranges.append((start, min(end, size - 1)))
    if not ranges:
        raise RangeNotSatisfiable("no range is satisfiable")
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end + 1:  # overlapping or adjacent (RFC 9110 14.2 allows merging)
            merged[-1] = (last_start, max(end, last_end))
        else:
            merged.append((start, end))
    return None if len(merged) > max_ranges else merged


def _http_date(text: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _weak_match(header: str, etag: str) -> bool:
    """If-None-Match's comparison (RFC 9110 8.8.3.2): W/ prefixes ignored."""
    bare = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == bare for tag in _tags(header))


def _strong_match(header: str, etag: str) -> bool:
    """If-Match's and If-Range's: weak tags never match."""
    if etag.startswith("W/"):
        return False
    return any(tag == "*" or tag == etag for tag in _tags(header))


def _file_chunks(path: str, chunk_size: int) -> typing.Iterator[bytes]:
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            yield chunk


class FileResponse(StreamingResponse):
    """Starlette's `FileResponse(path, status_code=200, headers=None, media_type=None,
    filename=None, stat_result=None, method=None, content_disposition_type="attachment")`."""

    chunk_size = READ_CHUNK
    validators = True  # send ETag and Last-Modified (conditional requests work either way)
    ranges = True  # honour Range (Accept-Ranges: bytes); False: always the whole file

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: typing.Any = None,
        media_type: str | None = None,
        filename: str | None = None,
        stat_result: os.stat_result | None = None,
        method: str | None = None,
        content_disposition_type: str = "attachment",
        *,
        content_type: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.filename = filename
        self.stat_result = stat_result
        if media_type is None and content_type is None:
            media_type = mimetypes.guess_type(filename or self.path)[0] or "text/plain"
        self._iterator: typing.Any = None
        super().__init__(_NO_ITERATOR, status_code, headers, media_type, content_type=content_type)
        if filename is not None:
            quoted = urllib.parse.quote(filename)
            if quoted != filename:  # RFC 6266 4.3: non-ASCII (or a quote) goes in filename*
                disposition = f"{content_disposition_type}; filename*=utf-8''{quoted}"
            else:
                disposition = f'{content_disposition_type}; filename="{filename}"'
            self.raw_headers.append((b"content-disposition", disposition.encode("latin-1")))

    # The worker sends the file itself unless a middleware took over the body: reading the
    # iterator gives the file's bytes, replacing it marks the response as an ordinary stream.
    @property
    def body_iterator(self) -> typing.Any:
        if self._iterator is None:
            return _file_chunks(self.path, self.chunk_size)
        return self._iterator

    @body_iterator.setter
    def body_iterator(self, iterator: typing.Any) -> None:
        if iterator is _NO_ITERATOR:  # from StreamingResponse.__init__: the file is the body
            return
        self._iterator = iterator

    @property
    def sends_file(self) -> bool:  # type: ignore[override]
        return self._iterator is None

    def plan(self, headers: typing.Mapping[str, str], method: str, common: bytes,
             max_ranges: int) -> FilePlan:
        """What to send for a request with these headers; opens the file (the caller closes
        it). A missing file or a directory raises (the handler's mistake: a 500)."""
        try:
            file = open(self.path, "rb")
        except FileNotFoundError:
            raise RuntimeError(f"File at path {self.path} does not exist.") from None
        try:
            result = os.fstat(file.fileno())  # of what is open: no race with a rename
            if not stat.S_ISREG(result.st_mode):
                raise RuntimeError(f"File at path {self.path} is not a file.")
            plan = self._plan(result, headers, method, common, max_ranges)
        except BaseException:
            file.close()
            raise
        if not plan[2]:
            file.close()
            return plan[0], plan[1], plan[2], None
        return plan[0], plan[1], plan[2], file

    def _plan(self, result: os.stat_result, headers: typing.Mapping[str, str], method: str,
              common: bytes, max_ranges: int) -> FilePlan:
        size = result.st_size
        mine = self.headers
        etag = mine.get("etag")
        modified = int(result.st_mtime)
        if etag is None:
            etag = '"%x-%x"' % (result.st_mtime_ns, size)
            if self.validators:
                self.raw_headers.append((b"etag", etag.encode("latin-1")))
        if self.validators and "last-modified" not in mine:
            self.raw_headers.append((b"last-modified", email.utils.formatdate(modified, usegmt=True).encode("latin-1")))
        if "accept-ranges" not in mine:
            self.raw_headers.append((b"accept-ranges", b"bytes" if self.ranges else b"none"))
        reading = method in ("GET", "HEAD")

        # Preconditions, in RFC 9110 13.2.2's order.
        if_match = headers.get("if-match")
        if if_match is not None:
            if not _strong_match(if_match, etag):
                return self._refusal(412, "Precondition Failed", common, method)
        else:
            since = headers.get("if-unmodified-since")
            stamp = _http_date(since) if since is not None else None
            if stamp is not None and modified > stamp:
                return self._refusal(412, "Precondition Failed", common, method)
        if_none_match = headers.get("if-none-match")
        if if_none_match is not None:
            if _weak_match(if_none_match, etag):
                if reading:
                    return self._not_modified(common)
                return self._refusal(412, "Precondition Failed", common, method)
        elif reading:
            since = headers.get("if-modified-since")
            stamp = _http_date(since) if since is not None else None
            if stamp is not None and modified <= stamp:
                return self._not_modified(common)

        # Ranges: GET only (RFC 9110 14.2), and only if If-Range still holds.
        ranges = None
        range_header = headers.get("range") if self.ranges and method == "GET" and self.status_code == 200 else None
        if range_header is not None and self._if_range_holds(headers.get("if-range"), etag, modified):
            try:
                ranges = parse_ranges(range_header, size, max_ranges)
            except RangeNotSatisfiable as exc:
                refusal = error_response(416, str(exc), {"content-range": f"bytes */{size}"})
                return 416, refusal.encode(common, method == "HEAD"), [], None
        body_wanted = method != "HEAD"
        if ranges is None:
            head = b"%s%scontent-length: %d\r\n%s\r\n" % (
                status_line(self.status_code), common, size, self.encode_headers())
            return self.status_code, head, [(0, size)] if body_wanted and size else [], None
        if len(ranges) == 1:
            start, end = ranges[0]
            self.raw_headers.append((b"content-range", b"bytes %d-%d/%d" % (start, end, size)))
            head = b"%s%scontent-length: %d\r\n%s\r\n" % (
                status_line(206), common, end - start + 1, self.encode_headers())
            return 206, head, [(start, end - start + 1)], None
        return self._multipart(ranges, size, common)

    def _multipart(self, ranges: list[tuple[int, int]], size: int, common: bytes) -> FilePlan:
        boundary = secrets.token_hex(13).encode("ascii")
        part_type = (self.content_type or "application/octet-stream").encode("latin-1")
        parts: list[bytes | tuple[int, int]] = []
        length = 0
        for index, (start, end) in enumerate(ranges):
            part_head = b"%s--%s\r\ncontent-type: %s\r\ncontent-range: bytes %d-%d/%d\r\n\r\n" % (
                b"\r\n" if index else b"", boundary, part_type, start, end, size)
            parts.append(part_head)
            parts.append((start, end - start + 1))
            length += len(part_head) + end - start + 1
        tail = b"\r\n--%s--\r\n" % boundary
        parts.append(tail)
        length += len(tail)
        self.media_type = "multipart/byteranges; boundary=" + boundary.decode("ascii")
        self.raw_headers[:] = [pair for pair in self.raw_headers if pair[0].lower() != b"content-type"]
        head = b"%s%scontent-length: %d\r\n%s\r\n" % (status_line(206), common, length, self.encode_headers())
        return 206, head, parts, None

    @staticmethod
    def _if_range_holds(if_range: str | None, etag: str, modified: int) -> bool:
        if if_range is None:
            return True
        if_range = if_range.strip()
        if if_range.startswith(('"', "W/")):
            return _strong_match(if_range, etag)
        stamp = _http_date(if_range)
        return stamp is not None and int(stamp) == modified

    def _not_modified(self, common: bytes) -> FilePlan:
        kept = [pair for pair in self.raw_headers if pair[0].lower() in _NOT_MODIFIED_KEEPS]
        lines = b"".join(encode_pairs(kept)[0])
        return 304, b"%s%s%s\r\n" % (status_line(304), common, lines), [], None

    @staticmethod
    def _refusal(status: int, detail: str, common: bytes, method: str) -> FilePlan:
        return status, error_response(status, detail).encode(common, method == "HEAD"), [], None

    def __repr__(self) -> str:
        return f"<FileResponse {self.status_code} {self.path!r}>"
