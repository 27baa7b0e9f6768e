"""catzilla.cache and catzilla.memory: 0.2.3's cache API and memory functions, over a real server."""
from __future__ import annotations

import time

import pytest

from catzilla import SmartCache, SmartCacheConfig, cached, get_cache, reset_cache
from catzilla.memory import get_allocator_info, memory_usage_mb, optimize_memory
from compat_support import compat_client


@pytest.fixture(scope="module")
def client():
    with compat_client("cache_app:app", "--threads", "4") as client:
        yield client


def test_get_returns_value_and_found_set_ttl_and_lru(client):
    assert client.get("/kv/a").json() == {"value": None, "found": False}
    assert client.put("/kv/a", json={"x": 1}).json() == {"stored": True}
    assert client.get("/kv/a").json() == {"value": {"x": 1}, "found": True}
    for key in "bcd":  # capacity 3: "a" is the least recently used
        client.put(f"/kv/{key}", json=key)
    assert client.get("/kv/a").status_code == 404
    client.put("/kv/short?ttl=1", json="soon gone")
    assert client.get("/kv/short").json()["found"]
    time.sleep(1.2)
    assert not client.get("/kv/short").json()["found"]
    stats = client.get("/kv-stats").json()
    assert stats["evictions"] >= 1 and stats["size"] == 2  # "short" expired and went
    assert stats["tiers"]["disk"]["enabled"] is False  # asked for, not provided: said so
    assert stats["health"] == {"memory": True, "redis": False, "disk": False}
    assert "no disk tier" in client.server.logs()


def test_cached_function_is_called_once_per_argument(client):
    first = client.get("/square/7").json()
    assert first["square"] == 49
    assert client.get("/square/7").json()["call"] == first["call"]
    assert client.get("/square/8").json()["call"] != first["call"]


def test_response_cache_middleware(client):
    first = client.get("/pages/home")
    assert first.headers["x-cache"] == "MISS"
    again = client.get("/pages/home")
    assert again.headers["x-cache"] == "HIT" and again.json() == first.json()
    assert client.get("/pages/home", headers={"authorization": "Bearer t"}).json()["call"] != first.json()["call"]
    assert client.get("/pages/about").json()["call"] != first.json()["call"]
    assert "x-cache" not in client.get("/pages-nostore").headers  # not under include_paths
    time.sleep(1.2)  # ttl=1
    assert client.get("/pages/home").headers["x-cache"] == "MISS"


def test_memory_functions_tell_the_truth(client):
    body = client.get("/memory").json()
    stats = body["stats"]
    assert stats["pid"] == body["pid"] and stats["source"] == "/proc/self/statm"
    with open(f"/proc/{body['pid']}/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    assert abs(stats["rss_mb"] - rss_kb / 1024) < 8  # the kernel's figure, moments apart
    assert stats["peak_mb"] >= stats["rss_mb"] - 1
    assert body["jemalloc"] is False and stats["allocator"] == "system_malloc"  # not preloaded here
    assert body["global_cache_is_one"]


def test_cache_in_process():
    reset_cache()
    assert get_cache() is get_cache()
    cache = SmartCache(SmartCacheConfig(memory_capacity=10, max_value_size=4))
    assert not cache.set("big", "x" * 5) and cache.set("ok", "x")
    assert cache.exists("ok") and cache.delete("ok") and not cache.exists("ok")
    store = SmartCache()
    seen = []

    @cached(ttl=60, cache=store)
    def f(a, b=1):
        seen.append((a, b))
        return a + b

    assert f(1, b=2) == f(1, b=2) == 3 and seen == [(1, 2)]
    assert memory_usage_mb() > 1 and get_allocator_info()["current_allocator"] == "system_malloc"
    assert isinstance(optimize_memory(), bool)


def test_a_cached_response_keeps_repeated_header_fields(client):
    first = client.get("/pages/two-cookies")
    again = client.get("/pages/two-cookies")
    assert again.headers["x-cache"] == "HIT" and again.json() == first.json()
    assert again.headers.get_list("x-multi") == ["a", "b"]
