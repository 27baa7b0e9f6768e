"""The worker's thread pool on its own, driven from a running event loop: its counts (kept
without a lock, see catzilla/worker/pool.py), blocking jobs that overlap, the --max-queue
refusal, threads started only when no thread is free, and one wake-up for a burst."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from catzilla.worker.pool import ThreadPool

pytestmark = pytest.mark.filterwarnings("error")


def run(scenario, *args, **kwargs):
    """`scenario(loop, pool)` on a running loop, with the pool shut down afterwards."""
    async def main():
        pool = ThreadPool(asyncio.get_running_loop(), *args, **kwargs)
        try:
            return await scenario(asyncio.get_running_loop(), pool)
        finally:
            pool.shutdown(wait=True)
    return asyncio.run(main())


async def until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def test_blocking_jobs_overlap_and_the_counts_follow_them():
    async def scenario(loop, pool):
        barrier = threading.Barrier(4, timeout=5)  # passes only if all four run at once
        release = threading.Event()
        results = []

        def blocking(n):
            barrier.wait()
            release.wait(5)
            return n

        for n in range(4):
            assert pool.admit(lambda result, error: results.append((result, error)), blocking, n)
        for n in range(3):  # no thread free: these wait
            assert pool.admit(lambda result, error: results.append((result, error)), str, n)
        await until(lambda: pool.busy == 4)
        assert (pool.busy, pool.queued, pool.pending, len(pool._threads)) == (4, 3, 7, 4)
        release.set()
        await until(lambda: len(results) == 7)
        assert sorted(results, key=repr) == sorted([(n, None) for n in range(4)] + [(str(n), None) for n in range(3)],
                                                   key=repr)
        assert (pool.busy, pool.queued, pool.pending, pool.completed) == (0, 0, 0, 7)
        assert len(pool._threads) == 4  # never more than the pool's size

    run(scenario, 4)


def test_a_full_queue_refuses_at_once():
    async def scenario(loop, pool):
        release = threading.Event()
        done = []
        for _ in range(3):  # two running, one waiting
            assert pool.admit(lambda result, error: done.append(error), release.wait, 5)
        assert not pool.admit(lambda result, error: done.append(error), release.wait, 5)
        release.set()
        await until(lambda: len(done) == 3)
        assert done == [None, None, None] and pool.pending == 0
        assert pool.admit(lambda result, error: done.append(error), int)  # room again
        await until(lambda: len(done) == 4)

    run(scenario, 2, max_queue=1)


def test_one_thread_serves_jobs_that_come_one_after_another():
    async def scenario(loop, pool):
        for n in range(20):
            future = loop.create_future()
            pool.submit(lambda result, error: future.set_result(result), pow, n, 2)
            assert await future == n * n
        assert len(pool._threads) == 1 and pool.completed == 20

    run(scenario, 8)


def test_an_error_reaches_done_and_the_thread_goes_on():
    async def scenario(loop, pool):
        outcomes = []
        pool.submit(lambda result, error: outcomes.append(error), int, "not a number")
        pool.submit(lambda result, error: outcomes.append(result), int, "12")
        await until(lambda: len(outcomes) == 2)
        assert isinstance(outcomes[0], ValueError) and outcomes[0].__traceback__ is not None
        assert outcomes[1] == 12 and pool.pending == 0

    run(scenario, 1)


def test_a_burst_of_results_is_delivered_in_few_wake_ups():
    async def scenario(loop, pool):
        gate = threading.Event()
        delivered = []
        wake_ups = 0
        deliver = pool._deliver

        def counting_deliver():
            nonlocal wake_ups
            wake_ups += 1
            deliver()

        pool._deliver = counting_deliver  # read by each thread when it starts
        for n in range(200):
            pool.submit(lambda result, error: delivered.append(result), lambda n=n: gate.wait(5) and n)
        gate.set()
        for _ in range(1000):  # the loop kept busy (as under load) until every job is done
            if pool.completed == 200:
                break
            time.sleep(0.01)
        await until(lambda: len(delivered) == 200)
        assert sorted(delivered) == list(range(200))
        assert wake_ups == 1  # the results that finished while one wake-up was pending share it
        assert pool.pending == 0 and pool.completed == 200

    run(scenario, 4)
