"""ext/pool.c against the Python it stands for: the pool's Handoff against pool.PyHandoff on
the same scenarios, a def route's job (SyncJob) against executor._run_sync, and its outcome
on the loop (SyncDone) against Executor._sync_done."""
from __future__ import annotations

import asyncio
import contextvars
import threading
import types
import typing

import pytest

from catzilla import HTTPException, JSONResponse, PlainTextResponse, Response, StreamingResponse
from catzilla.background_tasks import current_request
from catzilla.request import Request
from catzilla.routing import Route
from catzilla.worker import executor as executor_module
from catzilla.worker.exchange import Exchange
from catzilla.worker.pool import PyHandoff, QueueTimeout, ThreadPool

pytestmark = pytest.mark.filterwarnings("error")

COMMON = b"server: catzilla\r\ndate: Wed, 02 Dec 2026 17:00:00 GMT\r\n"


class PyPool(ThreadPool):
    handoff = PyHandoff


POOLS = [ThreadPool, PyPool]


def run(pool_type: type[ThreadPool], scenario: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
    async def main() -> typing.Any:
        pool = pool_type(asyncio.get_running_loop(), *args, **kwargs)
        try:
            return await scenario(asyncio.get_running_loop(), pool)
        finally:
            pool.shutdown(wait=True)
    return asyncio.run(main())


async def until(condition: typing.Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("pool_type", POOLS)
def test_both_hand_offs_count_refuse_and_deliver_alike(pool_type: type[ThreadPool]) -> None:
    async def scenario(loop: asyncio.AbstractEventLoop, pool: ThreadPool) -> list[typing.Any]:
        gate = threading.Event()
        outcomes: list[typing.Any] = []

        def done(result: typing.Any, error: BaseException | None) -> None:
            outcomes.append(result if error is None else type(error).__name__)

        assert pool.admit(done, lambda: gate.wait(5) and "first")
        assert pool.admit(done, lambda: gate.wait(5) and "second")
        assert pool.admit(done, pow, 2, 5)  # waits: no thread free
        assert not pool.admit(done, pow, 2, 6)  # max_queue 1: refused at once
        await until(lambda: pool.busy == 2)
        assert (pool.pending, pool.queued, pool.limit, len(pool._threads)) == (3, 1, 2, 2)
        pool.submit(done, int, "x")  # submit does not refuse, and errors reach done
        gate.set()
        await until(lambda: len(outcomes) == 4)
        assert (pool.pending, pool.completed, pool.busy, pool.queued) == (0, 4, 0, 0)
        return sorted(map(str, outcomes))

    assert run(pool_type, scenario, 2, max_queue=1) == ["32", "ValueError", "first", "second"]


@pytest.mark.parametrize("pool_type", POOLS)
def test_both_time_a_job_that_waited(pool_type: type[ThreadPool]) -> None:
    async def scenario(loop: asyncio.AbstractEventLoop, pool: ThreadPool) -> None:
        gate = threading.Event()
        errors: list[BaseException | None] = []
        assert pool.admit(lambda result, error: errors.append(error), gate.wait, 5)
        assert pool.admit(lambda result, error: errors.append(error), str, "late")  # waits, timed
        await asyncio.sleep(0.1)
        gate.set()
        await until(lambda: len(errors) == 2)
        assert errors[0] is None
        assert type(errors[1]) is QueueTimeout and errors[1].args == ("late",)

    run(pool_type, scenario, 1, queue_timeout=0.02)


@pytest.mark.parametrize("pool_type", POOLS)
def test_both_give_an_error_its_traceback_and_report_a_failing_done(
        pool_type: type[ThreadPool], caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(loop: asyncio.AbstractEventLoop, pool: ThreadPool) -> None:
        errors: list[BaseException | None] = []

        def failing_done(result: typing.Any, error: BaseException | None) -> None:
            raise LookupError("in done")

        pool.submit(lambda result, error: errors.append(error), int, "not a number")  # C raises it
        pool.submit(failing_done, int, "1")
        pool.submit(lambda result, error: errors.append(error), int, "2")
        await until(lambda: len(errors) == 2)
        assert isinstance(errors[0], ValueError) and errors[0].__traceback__ is not None
        assert errors[1] is None and pool.pending == 0

    run(pool_type, scenario, 1)
    assert "error while completing a thread pool job" in caplog.text and "LookupError: in done" in caplog.text


@pytest.mark.parametrize("handoff_type", [PyHandoff, ThreadPool.handoff])
def test_both_end_a_thread_on_stop_and_when_the_loop_has_closed(handoff_type: typing.Any) -> None:
    jobs: list[typing.Any] = []
    stop = object()
    woken: list[typing.Any] = []

    def wake(deliver: typing.Any) -> None:
        woken.append(deliver)
        if len(woken) == 2:
            raise RuntimeError("Event loop is closed")

    finished: typing.Any = __import__("collections").deque()
    handoff = handoff_type(lambda: jobs.pop(0), jobs.append, finished, wake, stop, lambda: None,
                           lambda *job: job, lambda exc: None, lambda exc: exc)
    handoff.limit = handoff.capacity = 10
    assert handoff.admit(lambda result, error: None, abs, -3) is True
    jobs.append(stop)
    assert handoff.work("deliver") is True  # one job, one wake-up, then stop
    assert woken == ["deliver"] and handoff.pending and handoff.submitted == 1
    handoff.deliver()
    assert (handoff.delivered, handoff.pending, len(finished)) == (1, False, 0)
    handoff.submit(lambda result, error: None, abs, -4)
    assert handoff.work("deliver") is False  # the wake-up found the loop closed
    assert len(finished) == 1


# -- a def route's job and its outcome -------------------------------------------------------

def make_exchange(handler: typing.Any, *, head_only: bool = False, owed: bool = True) -> Exchange:
    route = Route("/x", "GET", handler, [])
    request = Request("GET", "/x", "", [], b"", None, "1.1", {})
    exchange = Exchange(types.SimpleNamespace(), request, route, COMMON, head_only, True, 0, 0.0)
    exchange.owed = owed
    return exchange


def handlers() -> list[typing.Any]:
    def json(request: Request) -> JSONResponse:
        assert current_request.get() is request
        return JSONResponse({"message": "Hello, World!"})

    def with_header(request: Request) -> JSONResponse:
        return JSONResponse({"a": 1}, headers={"x-id": "7"})

    def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi")

    def a_dict(request: Request) -> dict[str, int]:
        return {"a": 1}

    def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(iter([b"a"]))

    def not_found(request: Request) -> None:
        raise HTTPException(404, "nothing here")

    def boom(request: Request) -> None:
        raise ValueError("boom")

    def exits(request: Request) -> None:
        raise SystemExit(3)

    def bad_status(request: Request) -> JSONResponse:
        return JSONResponse({"a": 1}, 99)  # refused when encoded

    def no_request() -> JSONResponse:
        return JSONResponse({"none": True})

    return [json, with_header, plain, a_dict, stream, not_found, boom, exits, bad_status, no_request]


def outcome(job: typing.Any, handler: typing.Any, head_only: bool, owed: bool = True) -> tuple[typing.Any, ...]:
    exchange = make_exchange(handler, head_only=head_only, owed=owed)
    returned = contextvars.copy_context().run(job, exchange, None)
    assert returned is exchange
    response = exchange.response
    status = getattr(response, "status_code", None)
    return type(response), status, exchange.data


@pytest.mark.parametrize("head_only", [False, True])
@pytest.mark.parametrize("index", range(len(handlers())))
def test_sync_job_is_run_sync(index: int, head_only: bool, caplog: pytest.LogCaptureFixture) -> None:
    handler = handlers()[index]
    native = outcome(executor_module.run_sync, handler, head_only)
    reference = outcome(executor_module._run_sync, handler, head_only)
    assert native == reference
    assert native[0] is not type(None)


def test_sync_job_runs_nothing_no_longer_owed() -> None:
    ran = []
    handler = lambda request: ran.append(request)  # noqa: E731
    assert outcome(executor_module.run_sync, handler, False, owed=False) == (type(None), None, None)
    assert ran == []


def test_sync_job_leaves_an_awaitable_for_the_loop() -> None:
    async def later() -> JSONResponse:
        return JSONResponse({})

    def returns_coroutine(request: Request) -> typing.Any:
        return later()

    exchange = make_exchange(returns_coroutine)
    contextvars.copy_context().run(executor_module.run_sync, exchange, None)
    assert asyncio.iscoroutine(exchange.response) and exchange.data is None
    exchange.response.close()


def test_sync_job_with_arguments_goes_the_reference_s_way() -> None:
    def add(a: int, b: int) -> dict[str, int]:
        return {"sum": a + b}

    exchange = make_exchange(add)
    contextvars.copy_context().run(executor_module.run_sync, exchange, {"a": 1, "b": 2})
    assert exchange.data.endswith(b'{"sum":3}')


class Connection:
    def __init__(self) -> None:
        self.completed: list[tuple[typing.Any, ...]] = []
        self.worker = types.SimpleNamespace(common_keep_alive=COMMON, common_close=COMMON,
                                            common_keep_alive_10=COMMON)

    def complete(self, exchange: Exchange, response: Response, data: bytes | None) -> None:
        self.completed.append((exchange, response, data))


@pytest.mark.parametrize("case", ["usual", "late", "stream", "queue-timeout"])
def test_sync_done_is_sync_done(case: str) -> None:
    def results(done_of: typing.Callable[[typing.Any], typing.Any]) -> tuple[typing.Any, ...]:
        loop = asyncio.new_event_loop()
        pool = types.SimpleNamespace(reclaimed=0)
        pool.reclaim = lambda: setattr(pool, "reclaimed", pool.reclaimed + 1)
        executor = executor_module.Executor(loop, pool)
        connection = Connection()
        exchange = make_exchange(lambda request: None)
        exchange.connection = connection
        exchange.response = response = JSONResponse({"a": 1})
        exchange.data = response.encode(COMMON)
        error = None
        if case == "late":
            exchange.owed = False
        elif case == "stream":
            exchange.response, exchange.data = StreamingResponse(iter([b"a"])), None
        elif case == "queue-timeout":
            error = QueueTimeout(None, None, exchange, None)
        done_of(executor)(exchange, error)
        loop.close()
        calls = [(call[0] is exchange, type(call[1]), call[2]) for call in connection.completed]
        return calls, exchange.owed, pool.reclaimed, dict(executor.refused)

    native = results(lambda executor: executor._sync_job_done)
    assert native == results(lambda executor: executor._sync_done)
    assert native[0] or case == "late"
