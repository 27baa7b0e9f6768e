"""`StreamingWriter`: write a StreamingResponse's body as to a file (Catzilla 0.2.3's name).

    response = StreamingResponse(iter(()), content_type="text/csv")
    writer = StreamingWriter(response)
    csv.writer(writer).writerows(rows)
    writer.close()
    return response

What was written by the time the response starts to be sent is its body, sent chunk by
chunk as written; the writer is closed then, and a later write raises ValueError (a handler
cannot keep a connection open by forgetting close()).
"""
from __future__ import annotations

import io
import threading
import typing

__all__ = ["StreamingWriter"]


class StreamingWriter(io.TextIOBase):
    def __init__(self, streaming_response: typing.Any) -> None:
        super().__init__()
        self.response = streaming_response
        self._chunks: list[str | bytes] = []
        self._lock = threading.Lock()  # the body may start being sent from another thread
        streaming_response.body_iterator = self._body()

    def write(self, data: str | bytes) -> int:  # type: ignore[override]
        with self._lock:
            if self.closed:
                raise ValueError("write to a closed StreamingWriter (its response is being sent)")
            if data:
                self._chunks.append(data)
        return len(data)

    def writelines(self, lines: typing.Iterable[str | bytes]) -> None:  # type: ignore[override]
        for line in lines:
            self.write(line)

    def writable(self) -> bool:
        return True

    def _body(self) -> typing.Iterator[str | bytes]:
        with self._lock:
            chunks, self._chunks = self._chunks, []
            if not self.closed:
                super().close()
        yield from chunks
