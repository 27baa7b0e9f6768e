"""One request in flight, from the connection that parsed it to the executor that runs its
handler and back: everything either side needs to know about it, in one object.

The connection (catzilla.worker.protocol) makes it once it has routed the request and
started its stats clock; the executor (catzilla.worker.executor) runs the handler and hands
the response back with `connection.complete(exchange, response, data)`. While the outcome
is owed (`owed`), a timeout may answer first (504); whatever comes second finds `owed`
cleared and is dropped. A request answered at once (a 404, a probe) is an exchange too, so
the stats, the access log and --max-requests see every request the same way.

It is made once per request, so it is a C struct with fixed fields (ext/exchange.c): as
cheap to make as a tuple, its fields read and written as `__slots__` are.

    Exchange(connection, request, route, common, head_only, keep_alive, row, started)

- connection: the HttpProtocol it came on (executor.Connection)
- request: the Request; route: its Route, or None when no route answers it (404, 405, probes)
- how to answer: `common`, the header lines every response on the connection carries now
  (server, date, connection); `head_only` for HEAD (no body); `keep_alive` as decided when
  it started (a 504's head says so too)
- stats and access log: `row` in the stats block (the route's, or the unmatched one) and
  `started`, perf_counter() when handling began (also what timeouts count from)
- timeout state: `owed` while the handler runs in the pool or as a Task, and `task`
- what a pool job produced, read back on the loop: `response` (or the awaitable a `def`
  handler returned) and `data`, its bytes
"""
from __future__ import annotations

from .._native import Exchange

__all__ = ["Exchange"]
