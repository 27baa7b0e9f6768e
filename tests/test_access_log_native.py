"""The access log's lines made in C (ext/accesslog.c) against the Python reference they
stand for (AccessLog(native=False)): the same text, byte for byte, over ordinary and hostile
fields (control characters, quotes, non-ASCII, lone surrogates, long paths, odd numbers), in
both formats, through both entries (log() and exchange())."""
from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import types

import pytest

from catzilla._native import Exchange
from catzilla.datastructures import Address
from catzilla.logs import configure_logging
from catzilla.request import Request
from catzilla.worker.access_log import AccessLog
from catzilla.worker.protocol import HttpProtocol

CLIENTS = ["127.0.0.1:4000", "-", "::1:80", "203.0.113.9", "é:1", 'a"b:1', "x\ny", "\udcff:1"]
METHODS = ["GET", "POST", "PROPFIND", 'G"T', "GÉT"]
PATHS = ["/json", "/", "", "/a b", '/q"x', "/b\\s", "/nl\nx", "/a\r\n[2026-01-01 00:00:00,000] forged",
         "/tab\t", "/\x00", "/\x1b[31m", "/\x7f", "/~", "/é", "/\u2028", "/\U0001f600", "/\udcff",
         "/" + "a" * 9000, "/" + "é" * 9000, "/" + "x" * 100 + "\n"]
VERSIONS = ["1.1", "1.0", "2"]
STATUSES = [200, 404, 499, 0, 10**20, True]
SIZES = [None, 0, 27, 10**18, 10**19, 10**30, -1, 2.5]
DURATIONS = [0.0, -0.0, 0.05, 0.15, 0.25, 0.35, 0.45, 0.0004, 0.0005, 0.0625, 0.0015, 0.9995, 1.0005,
             123.4565, 2.675, 1e11, 999999999999.9, 1e12, 1e15, 1e16, 1e300, 5e-324, -1.5,
             math.inf, -math.inf, math.nan]
REQUEST_IDS = [None, "5f0c2a", 'q"x', "a\nb", "b\\c", 42, "é", "x" * 9000, "\udcff"]


CLOCK = [5000.0]  # time.perf_counter() while a pair is in use (the C side keeps the function)


@pytest.fixture(params=["text", "json"])
def pair(request, tmp_path, monkeypatch):
    """(C lines, Python lines), both writing directly where configure_logging sends lines."""
    monkeypatch.setattr(time, "perf_counter", lambda: CLOCK[0])
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("info", request.param, str(tmp_path / "access.log"))
    loop = asyncio.new_event_loop()
    native, reference = AccessLog(loop), AccessLog(loop, native=False)
    assert native._native is not None and native.handler is root.handlers[0]
    yield native, reference
    loop.close()
    for handler in root.handlers:
        handler.close()
    root.handlers[:], root.level = saved


def made(access: AccessLog, entry: str, args: tuple) -> tuple[str | None, str | None]:
    """The line `access` makes of `args` (or the error it raises), taken from its buffer."""
    try:
        getattr(access, entry)(*args)
    except Exception as exc:  # the same error, from both
        access._take()
        return None, type(exc).__name__
    return access._take(), None


def random_duration(rnd: random.Random) -> float:
    return rnd.choice([rnd.random(), rnd.random() * 10, rnd.random() * 1e5, rnd.choice(DURATIONS),
                       rnd.randrange(10**6) / 1000, rnd.randrange(10**6) / 1000 + 0.0005, rnd.random() * 1e12])


def test_log_lines_are_the_references(pair, monkeypatch):
    native, reference = pair
    rnd = random.Random(13)
    now = 1.7e9
    cases = [(c, m, p, v, s, z, d, r) for c in CLIENTS for p in PATHS for d in DURATIONS
             for (m, v, s, z, r) in [(rnd.choice(METHODS), rnd.choice(VERSIONS), rnd.choice(STATUSES),
                                      rnd.choice(SIZES), rnd.choice(REQUEST_IDS))]]
    cases += [(rnd.choice(CLIENTS), rnd.choice(METHODS), rnd.choice(PATHS), rnd.choice(VERSIONS),
               rnd.choice(STATUSES), rnd.choice(SIZES), random_duration(rnd), rnd.choice(REQUEST_IDS))
              for _ in range(5000)]
    fast = 0
    for i, args in enumerate(cases):
        # the clock: on in a second, into the next, at a second's edge, set back
        now = rnd.choice([now + rnd.random() * 0.01, now + 0.9999999, float(int(now) + 1), now - 3.5, now])
        monkeypatch.setattr(time, "time", lambda: now)
        if i % 3 == 0:
            args = args[:7]  # request_id left out
        line, error = made(native, "log", args)
        assert (line, error) == made(reference, "log", args), args
        fast += error is None and args[0] == "127.0.0.1:4000" and args[2] == "/json"
    assert fast  # ordinary lines were among them


@pytest.mark.parametrize("trusted", [False, True])
def test_exchange_lines_are_the_references(pair, monkeypatch, trusted):
    """exchange(): the fields read from the Exchange, its Request and the connection
    (slots read at their offsets, or attributes of any other object) as the Python does."""
    native, reference = pair
    clock = CLOCK
    monkeypatch.setattr(time, "time", lambda: 1.7e9 + clock[0] % 1)

    class Connection:  # a connection's slots, as HttpProtocol has them
        __slots__ = ("client", "client_text")
        _client_text = HttpProtocol._client_text

    rnd = random.Random(8)
    for i in range(3000):
        peer = Address("127.0.0.1", 40000 + i % 7)
        connection: object = Connection() if i % 2 else types.SimpleNamespace(_client_text=None)
        connection.client, connection.client_text = peer, f"{peer[0]}:{peer[1]}"
        if isinstance(connection, types.SimpleNamespace):
            connection._client_text = lambda request, c=connection: HttpProtocol._client_text(c, request)
        named = Address(rnd.choice(["203.0.113.9", "::1", "é"]), rnd.choice([0, 443])) if trusted else None
        client = rnd.choice([peer, None, named]) if trusted else rnd.choice([peer, None])
        request = Request(rnd.choice(METHODS), rnd.choice(PATHS), client=client, http_version=rnd.choice(VERSIONS))
        if i % 5 == 0:
            request.state.request_id = rnd.choice(REQUEST_IDS)
        elif i % 5 == 1:
            request.state.other = 1  # a state without an id
        started = clock[0]
        exchange = Exchange(connection, request, None, b"", False, True, 0, started)
        if i % 11 == 0:  # any object with these attributes will do
            exchange = types.SimpleNamespace(connection=connection, request=request, started=started)
        clock[0] += random_duration(rnd) / 1000 if i % 13 else 0.0
        args = (exchange, rnd.choice(STATUSES), rnd.choice(SIZES))
        assert made(native, "exchange", args) == made(reference, "exchange", args), (request.path, args[1:])


def test_a_class_attribute_set_later_is_read_as_python_reads_it(pair, monkeypatch):
    """The offsets of slots are remembered per type while it is unchanged: a property put on
    the Request class later is what both sides read."""
    native, reference = pair
    monkeypatch.setattr(time, "time", lambda: 1.7e9)  # both lines stamped in the same millisecond

    class Connection:
        __slots__ = ("client", "client_text")
        _client_text = HttpProtocol._client_text

    class MyRequest(Request):
        __slots__ = ()

    connection = Connection()
    connection.client, connection.client_text = Address("127.0.0.1", 1), "127.0.0.1:1"
    exchange = Exchange(connection, MyRequest("GET", "/before"), None, b"", False, True, 0, CLOCK[0] - 1.0)
    before = made(native, "exchange", (exchange, 200, 2))
    assert before == made(reference, "exchange", (exchange, 200, 2)) and "/before" in before[0]
    MyRequest.path = property(lambda self: "/after")  # type: ignore[assignment]
    after = made(native, "exchange", (exchange, 200, 2))
    assert after == made(reference, "exchange", (exchange, 200, 2)) and "/after" in after[0]


def test_lines_of_a_burst_are_written_in_one_write(tmp_path, monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "text", str(tmp_path / "access.log"))
        writes = []
        stream = root.handlers[0].stream
        monkeypatch.setattr(stream, "write", lambda text: writes.append(text), raising=False)
        loop = asyncio.new_event_loop()
        access = AccessLog(loop)
        for i in range(50):
            access.log("127.0.0.1:1", "GET", f"/{i}", "1.1", 200, 2, 0.5)
        loop.call_soon(loop.stop)
        loop.run_forever()  # the burst's flush, scheduled with its first line
        loop.close()
        assert len(writes) == 1 and writes[0].count("\n") == 50 and writes[0].endswith('"GET /49 HTTP/1.1" 200 2 0.5ms\n')
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved
