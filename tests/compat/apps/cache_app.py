"""SmartCache, @cached and the response cache as Catzilla 0.2.3's docs use them (our own app)."""
import itertools
import os

from catzilla import (
    Catzilla, JSONResponse, Path, SmartCache, SmartCacheConfig, cached,
    create_api_cache_middleware, get_cache, get_memory_stats, is_jemalloc_available, memory_usage_mb,
)

app = Catzilla()
cache = SmartCache(SmartCacheConfig(memory_capacity=3, memory_ttl=300, disk_enabled=True))
calls = itertools.count(1)
responses = create_api_cache_middleware(ttl=1, include_paths=["/pages/*"])
app.add_middleware(responses)


@app.put("/kv/{key}")
def put(request, key: str = Path(...)):
    ttl = request.query_params.get("ttl")
    return {"stored": cache.set(key, request.json(), int(ttl) if ttl else None)}


@app.get("/kv/{key}")
def get(request, key: str):
    value, found = cache.get(key)
    return JSONResponse({"value": value, "found": found}, status_code=200 if found else 404)


@app.get("/kv-stats")
def stats(request):
    s = cache.get_stats()
    return {"hits": s.hits, "misses": s.misses, "evictions": s.evictions, "size": s.size,
            "tiers": s.tier_stats, "health": cache.health_check()}


@cached(ttl=60, key_prefix="square_")
def square(n: int) -> dict:
    return {"n": n, "square": n * n, "call": next(calls)}


@app.get("/square/{n}")
def get_square(request, n: int):
    return square(n)


@app.get("/pages/{name}")
async def page(request, name: str):
    return {"name": name, "call": next(calls)}


@app.get("/pages-nostore")
def nostore(request):
    return {"call": next(calls)}


@app.get("/memory")
def memory(request):
    return {"stats": get_memory_stats(), "mb": memory_usage_mb(), "jemalloc": is_jemalloc_available(),
            "pid": os.getpid(), "global_cache_is_one": get_cache() is get_cache()}


@app.get("/pages/two-cookies")
def two_headers(request):
    out = JSONResponse({"call": next(calls)})
    out.headers.append("x-multi", "a")
    out.headers.append("x-multi", "b")
    return out
