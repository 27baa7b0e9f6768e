"""GZip: Starlette's `GZipMiddleware`, with streams compressed as they go.

    app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=6)

A response is compressed when the request accepts gzip and the response
- has no Content-Encoding yet (it is already encoded: compressing twice helps nobody),
- is not `text/event-stream` (events must reach the client as they are sent; a proxy or
  browser buffering a compressed stream would hold them back),
- is not a 206 part nor bodiless (204, 304),
- and, when its body is known, is at least `minimum_size` bytes (below that, the gzip
  framing costs about what it saves).
It then gets `Content-Encoding: gzip` and `Vary: Accept-Encoding` (a cache must not give the
compressed body to a client that did not ask for it). A `StreamingResponse` is compressed
piece by piece: each piece the app yields is flushed with Z_SYNC_FLUSH, so the client can
decompress everything sent so far and nothing is held back waiting for the next piece (the
price: a few bytes of flush marker per piece). Its length is unknown, so the server frames
it as chunks, as for any stream.
"""
from __future__ import annotations

import typing
import zlib

from ..request import Request
from ..response_headers import add_vary, field_value, remove_field, set_field
from ..responses import Response, StreamingResponse
from ._options import integer
from .base import PhasedMiddleware

__all__ = ["GZipMiddleware"]

EXCLUDED_CONTENT_TYPES = ("text/event-stream",)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding value allows gzip (RFC 9110 12.5.3): listed, or covered by
    "*", with a weight above 0. "gzip;q=0" is a refusal, not an acceptance."""
    if not accept_encoding:
        return False
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0  # a malformed weight: don't guess the client wants it
        if coding:
            weights[coding] = weight
    for coding in ("gzip", "x-gzip", "*"):  # x-gzip: RFC 9110 8.4.1.3 says treat as gzip
        if coding in weights:
            return weights[coding] > 0
    return False


_CONTENT_ENCODING = (b"Content-Encoding", b"gzip")
_VARY_ACCEPT_ENCODING = (b"Vary", b"Accept-Encoding")


def _gzip_compressor(level: int) -> typing.Any:
    return zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing


class GZipMiddleware(PhasedMiddleware):
    def __init__(self, app: typing.Any, minimum_size: int = 500, compresslevel: int = 9) -> None:
        super().__init__(app)
        self.minimum_size = integer("minimum_size", minimum_size)
        self.compresslevel = integer("compresslevel", compresslevel, 0, 9)

    def on_request(self, request: Request) -> bool:
        """Whether the client takes gzip."""
        return accepts_gzip(request.get_header("accept-encoding"))

    def on_response(self, request: Request, response: Response, accepted: bool) -> Response:
        if not accepted or not self._compressible(response):
            return response
        if response.streaming:  # a StreamingResponse, or anything the server streams
            stream = typing.cast(StreamingResponse, response)
            chunks = stream.body_iterator
            if hasattr(chunks, "__aiter__"):
                stream.body_iterator = self._compress_async(chunks, response.charset)
            else:
                # Stays a plain iterator, so the server still advances it (and we compress)
                # in the thread pool rather than on the event loop.
                stream.body_iterator = self._compress_sync(chunks, response.charset)
        else:
            if len(response.body) < self.minimum_size:
                return response
            compressor = _gzip_compressor(self.compresslevel)
            response.body = compressor.compress(response.body) + compressor.flush()
        fields = response.raw_headers
        remove_field(fields, b"content-length")  # stale now; the server computes its own
        set_field(fields, _CONTENT_ENCODING)
        add_vary(fields, _VARY_ACCEPT_ENCODING)
        return response

    def _compressible(self, response: Response) -> bool:
        if response.status_code in (204, 206, 304) or response.status_code < 200:
            return False
        fields = response.raw_headers
        if field_value(fields, b"content-encoding") is not None:
            return False  # already encoded
        if field_value(fields, b"content-range") is not None:
            return False  # a part of a representation: its offsets are of the unencoded bytes
        content_type = field_value(fields, b"content-type")
        content_type = content_type.decode("latin-1") if content_type else response.media_type or ""
        return not content_type.lower().lstrip().startswith(EXCLUDED_CONTENT_TYPES)

    def _compress_sync(self, chunks: typing.Iterable[typing.Any], charset: str) -> typing.Iterator[bytes]:
        compressor = _gzip_compressor(self.compresslevel)
        iterator = iter(chunks)
        try:
            for chunk in iterator:
                if isinstance(chunk, str):
                    chunk = chunk.encode(charset)
                if chunk:  # an empty piece flushes nothing new; skip the marker
                    yield compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
            yield compressor.flush()
        finally:
            # The server stops early when the client goes away: let the app's generator
            # run its own cleanup now, not whenever it is collected.
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    async def _compress_async(self, chunks: typing.AsyncIterable[typing.Any], charset: str
                              ) -> typing.AsyncIterator[bytes]:
        compressor = _gzip_compressor(self.compresslevel)
        iterator = chunks.__aiter__()
        try:
            async for chunk in iterator:
                if isinstance(chunk, str):
                    chunk = chunk.encode(charset)
                if chunk:
                    yield compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
            yield compressor.flush()
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
