"""SmartCache (Catzilla 0.2.3's cache API): `cache.get(key) -> (value, found)`, `@cached`,
and response-cache middleware.

Tiers, honestly:
- memory: an LRU with a TTL per entry, in this process. With `--workers N` each worker has
  its own: a value set by one worker is not seen by the others.
- redis: shared by every worker and server, when `redis_enabled=True` and the `redis`
  package is installed (`pip install redis`); values travel as MessagePack, so only plain
  data (dict, list, str, numbers, bytes, None) reaches it. A Redis that is down or slow
  counts errors and misses; the request goes on without it.
- disk: not provided. `disk_enabled=True` is accepted (0.2.3's apps set it) and reported as
  off by `health_check()` and `get_stats()`, with a warning at start.
"""
from __future__ import annotations

import collections
import dataclasses
import fnmatch
import functools
import inspect
import logging
import sys
import threading
import time
import typing

import msgspec

from .responses import Response

__all__ = [
    "SmartCache", "SmartCacheConfig", "CacheStats", "cached", "get_cache", "reset_cache",
    "SmartCacheMiddleware", "ConditionalCacheMiddleware", "create_api_cache_middleware",
    "create_static_cache_middleware", "create_page_cache_middleware",
]

logger = logging.getLogger("catzilla.cache")

_MISSING = object()


@dataclasses.dataclass
class SmartCacheConfig:
    """0.2.3's settings. Those of tiers or mechanisms we do not have (compression, jemalloc,
    disk, buckets, intervals) are accepted and do nothing; see the module's docstring."""

    memory_capacity: int = 10000  # entries
    memory_bucket_count: int = 0
    memory_ttl: int = 3600  # seconds, when set() is given none
    max_value_size: int = 100 * 1024 * 1024  # bytes, for str/bytes values
    compression_enabled: bool = True
    jemalloc_enabled: bool = True
    redis_enabled: bool = False
    redis_url: str = "redis://localhost:6379/0"
    redis_ttl: int = 86400
    redis_max_connections: int = 10
    redis_timeout: float = 0.25  # seconds a Redis call may take before it counts as a miss
    disk_enabled: bool = False
    disk_path: str = "/tmp/catzilla_cache"
    disk_ttl: int = 604800
    disk_max_size: int = 1024 * 1024 * 1024
    enable_stats: bool = True
    stats_collection_interval: int = 60
    auto_expire_interval: int = 300


@dataclasses.dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    memory_usage: int = 0  # bytes of str/bytes values, a shallow size for others
    total_requests: int = 0
    hit_ratio: float = 0.0
    size: int = 0
    capacity: int = 0
    tier_stats: dict[str, dict[str, typing.Any]] = dataclasses.field(default_factory=dict)


class _MemoryTier:
    """LRU with an expiry time per entry; a lock, since `def` handlers run in threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.entries: collections.OrderedDict[str, tuple[typing.Any, float, int]] = collections.OrderedDict()
        self.lock = threading.Lock()
        self.hits = self.misses = self.evictions = self.bytes = 0

    def get(self, key: str, now: float) -> typing.Any:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                self.misses += 1
                return _MISSING
            value, expires, size = entry
            if expires <= now:
                del self.entries[key]
                self.bytes -= size
                self.misses += 1
                return _MISSING
            self.entries.move_to_end(key)
            self.hits += 1
            return value

    def set(self, key: str, value: typing.Any, expires: float, size: int) -> None:
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            self.entries[key] = (value, expires, size)
            self.bytes += size
            while len(self.entries) > self.capacity:
                _, (_, _, dropped) = self.entries.popitem(last=False)
                self.bytes -= dropped
                self.evictions += 1

    def delete(self, key: str) -> bool:
        with self.lock:
            entry = self.entries.pop(key, None)
            if entry is not None:
                self.bytes -= entry[2]
            return entry is not None

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.bytes = 0


class _RedisTier:
    def __init__(self, config: SmartCacheConfig) -> None:
        import redis  # an ImportError here is turned into a warning by SmartCache

        self.client = redis.Redis.from_url(
            config.redis_url, max_connections=config.redis_max_connections,
            socket_timeout=config.redis_timeout, socket_connect_timeout=config.redis_timeout)
        self.ttl = config.redis_ttl
        self.hits = self.misses = self.errors = 0

    def get(self, key: str) -> typing.Any:
        try:
            raw = self.client.get(key)
        except Exception as exc:
            return self._failed("get", exc)
        if raw is None:
            self.misses += 1
            return _MISSING
        self.hits += 1
        return msgspec.msgpack.decode(raw)

    def set(self, key: str, value: typing.Any, ttl: int | None) -> None:
        try:
            encoded = msgspec.msgpack.encode(value)
        except TypeError:
            return  # not plain data: kept in this worker's memory only
        try:
            self.client.set(key, encoded, ex=ttl or self.ttl)
        except Exception as exc:
            self._failed("set", exc)

    def delete(self, key: str) -> bool:
        try:
            return bool(self.client.delete(key))
        except Exception as exc:
            self._failed("delete", exc)
            return False

    def _failed(self, operation: str, exc: Exception) -> typing.Any:
        self.errors += 1
        self.misses += 1
        if self.errors == 1 or self.errors % 1000 == 0:
            logger.warning("redis cache %s failed (%d errors so far): %s", operation, self.errors, exc)
        return _MISSING


def _size(value: typing.Any) -> int:
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    return sys.getsizeof(value)


class SmartCache:
    def __init__(self, config: SmartCacheConfig | None = None) -> None:
        self.config = config or SmartCacheConfig()
        self._memory = _MemoryTier(self.config.memory_capacity)
        self._redis: _RedisTier | None = None
        self._redis_problem: str | None = None
        if self.config.redis_enabled:
            try:
                self._redis = _RedisTier(self.config)
            except ImportError:
                self._redis_problem = "the redis package is not installed (pip install redis)"
                logger.warning("SmartCache: redis tier off: %s; this worker's memory only", self._redis_problem)
        if self.config.disk_enabled:
            logger.warning("SmartCache: there is no disk tier in this Catzilla; disk_enabled ignored")

    def get(self, key: str) -> tuple[typing.Any, bool]:
        value = self._memory.get(key, time.monotonic())
        if value is _MISSING and self._redis is not None:
            value = self._redis.get(key)
            if value is not _MISSING:  # promoted, for this worker's next request
                self._memory.set(key, value, time.monotonic() + self.config.memory_ttl, _size(value))
        return (None, False) if value is _MISSING else (value, True)

    def set(self, key: str, value: typing.Any, ttl: int | None = None) -> bool:
        size = _size(value)
        if size > self.config.max_value_size:
            return False
        self._memory.set(key, value, time.monotonic() + (ttl if ttl is not None else self.config.memory_ttl), size)
        if self._redis is not None:
            self._redis.set(key, value, ttl)
        return True

    def delete(self, key: str) -> bool:
        found = self._memory.delete(key)
        if self._redis is not None:
            found = self._redis.delete(key) or found
        return found

    def exists(self, key: str) -> bool:
        return self.get(key)[1]

    def clear(self) -> None:
        """Empties this worker's memory tier (a shared Redis is left alone: other workers
        and servers use it; delete its keys there if that is what you mean)."""
        self._memory.clear()

    def size(self) -> int:
        return len(self._memory.entries)

    def keys(self) -> list[str]:
        with self._memory.lock:
            return list(self._memory.entries)

    def get_stats(self) -> CacheStats:
        memory, redis = self._memory, self._redis
        hits = memory.hits + (redis.hits if redis else 0)
        misses = memory.misses if redis is None else redis.misses  # a memory miss goes on to redis
        total = memory.hits + memory.misses
        tiers: dict[str, dict[str, typing.Any]] = {
            "memory": {"hits": memory.hits, "misses": memory.misses, "size": self.size(),
                       "scope": "this worker"},
            "redis": ({"hits": redis.hits, "misses": redis.misses, "errors": redis.errors}
                      if redis else {"enabled": False, "reason": self._redis_problem or "redis_enabled is False"}),
            "disk": {"enabled": False, "reason": "no disk tier in this Catzilla"},
        }
        return CacheStats(hits=hits, misses=misses, evictions=memory.evictions, memory_usage=memory.bytes,
                          total_requests=total, hit_ratio=(hits / total) if total else 0.0,
                          size=self.size(), capacity=memory.capacity, tier_stats=tiers)

    def health_check(self) -> dict[str, bool]:
        redis_ok = False
        if self._redis is not None:
            try:
                redis_ok = bool(self._redis.client.ping())
            except Exception:
                redis_ok = False
        return {"memory": True, "redis": redis_ok, "disk": False}

    def info(self) -> dict[str, typing.Any]:
        return {"config": dataclasses.asdict(self.config), "stats": dataclasses.asdict(self.get_stats())}


# -- the process's cache, for @cached and get_cache() ----------------------------------------

_global: SmartCache | None = None
_global_lock = threading.Lock()


def get_cache(config: SmartCacheConfig | None = None) -> SmartCache:
    """This process's shared SmartCache, made on first call (`config` counts only then)."""
    global _global
    with _global_lock:
        if _global is None:
            _global = SmartCache(config)
        return _global


def reset_cache() -> None:
    """Forget this process's cache (the next get_cache() makes a new one)."""
    global _global
    with _global_lock:
        if _global is not None:
            _global.clear()
        _global = None


def cached(ttl: int = 3600, key_prefix: str = "", cache: SmartCache | None = None) -> typing.Callable[[typing.Any], typing.Any]:
    """Keep a function's result for `ttl` seconds, per distinct arguments. The key is the
    prefix, the function's qualified name and its arguments as JSON (their repr() when they
    are not plain data), so arguments must identify the result."""
    def decorate(fn: typing.Callable[..., typing.Any]) -> typing.Callable[..., typing.Any]:
        name = f"{key_prefix}{fn.__module__}.{fn.__qualname__}"

        def key_for(args: tuple[typing.Any, ...], kwargs: dict[str, typing.Any]) -> str:
            try:
                return f"{name}:{msgspec.json.encode([args, sorted(kwargs.items())]).decode()}"
            except TypeError:
                return f"{name}:{args!r}:{sorted(kwargs.items())!r}"

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def call_async(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
                store = cache or get_cache()
                key = key_for(args, kwargs)
                value, found = store.get(key)
                if not found:
                    value = await fn(*args, **kwargs)
                    store.set(key, value, ttl)
                return value
            return call_async

        @functools.wraps(fn)
        def call(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
            store = cache or get_cache()
            key = key_for(args, kwargs)
            value, found = store.get(key)
            if not found:
                value = fn(*args, **kwargs)
                store.set(key, value, ttl)
            return value
        return call
    return decorate


# -- response caching ------------------------------------------------------------------------

class SmartCacheMiddleware:
    """Answers a repeated GET from the cache: register with `app.add_middleware(instance)`.
    The key is the method, path, query (less `ignore_query_params`) and the values of
    `cache_vary_headers`; a response marked `Cache-Control: no-store` or `private` is not
    kept, nor one to a request with credentials unless `cache_authenticated`. Answers carry
    `X-Cache: HIT` or `MISS`."""

    def __init__(self, config: SmartCacheConfig | None = None, cache_instance: SmartCache | None = None,
                 default_ttl: int = 3600, cache_methods: typing.Iterable[str] | None = None,
                 cache_status_codes: typing.Iterable[int] | None = None,
                 ignore_query_params: typing.Iterable[str] | None = None,
                 cache_headers: typing.Iterable[str] | None = None, cache_private: bool = False,
                 cache_authenticated: bool = False, exclude_paths: typing.Iterable[str] | None = None,
                 include_paths: typing.Iterable[str] | None = None,
                 cache_vary_headers: typing.Iterable[str] | None = None,
                 custom_key_generator: typing.Callable[[typing.Any], str] | None = None) -> None:
        self.cache = cache_instance or SmartCache(config)
        self.default_ttl = default_ttl
        self.methods = {m.upper() for m in (cache_methods or ("GET", "HEAD"))}
        self.status_codes = set(cache_status_codes or (200,))
        self.ignore_query = set(ignore_query_params or ())
        self.cache_private = cache_private
        self.cache_authenticated = cache_authenticated
        self.exclude = list(exclude_paths or ())
        self.include = list(include_paths or ())
        self.vary = [h.lower() for h in (cache_vary_headers or cache_headers or ())]
        self.key_generator = custom_key_generator
        self.stored = self.served = 0
        self._default_rule = {"ttl": default_ttl, "methods": self.methods, "status_codes": self.status_codes}

    def _rule(self, path: str) -> dict[str, typing.Any] | None:
        """The settings for `path`, or None when it is not cached."""
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in self.exclude):
            return None
        if self.include and not any(fnmatch.fnmatchcase(path, pattern) for pattern in self.include):
            return None
        return self._default_rule

    def _key(self, request: typing.Any) -> str:
        if self.key_generator is not None:
            return self.key_generator(request)
        query = sorted((k, v) for k, v in request.query_params.multi_items() if k not in self.ignore_query) \
            if request.query_string else []
        vary = [request.headers.get(name, "") for name in self.vary]
        return msgspec.json.encode(["response", request.method, request.path, query, vary]).decode()

    def _cacheable_request(self, request: typing.Any, rule: dict[str, typing.Any]) -> bool:
        if request.method not in rule["methods"]:
            return False
        if not self.cache_authenticated and ("authorization" in request.headers or "cookie" in request.headers):
            return False
        return True

    async def process_request(self, request: typing.Any) -> Response | None:
        rule = self._rule(request.path)
        if rule is None or not self._cacheable_request(request, rule):
            return None
        entry, found = self.cache.get(self._key(request))
        if not found:
            return None
        status, raw_headers, body, media_type = entry
        self.served += 1
        return Response(body, status, [*raw_headers, (b"x-cache", b"HIT")], media_type)

    async def process_response(self, request: typing.Any, response: Response) -> Response:
        if response.headers.get("x-cache") == "HIT":
            return response
        rule = self._rule(request.path)
        if rule is None or not self._cacheable_request(request, rule) or response.streaming:
            return response
        if response.status_code not in rule["status_codes"]:
            return response
        control = response.headers.get("cache-control", "").lower()
        if "no-store" in control or ("private" in control and not self.cache_private) or "set-cookie" in response.headers:
            return response
        entry = (response.status_code, list(response.raw_headers), response.body, response.media_type)
        response.headers["x-cache"] = "MISS"  # on this answer only: the cached one says HIT
        self.cache.set(self._key(request), entry, rule["ttl"])
        self.stored += 1
        return response

    def get_stats(self) -> dict[str, typing.Any]:
        return {"stored": self.stored, "served": self.served, "cache": dataclasses.asdict(self.cache.get_stats())}

    def clear_cache(self) -> None:
        self.cache.clear()


class ConditionalCacheMiddleware(SmartCacheMiddleware):
    """Per-path rules: `{"/api/users/*": {"ttl": 300, "methods": ["GET"], "status_codes":
    [200, 404]}}`; the first pattern that matches decides, a path no rule matches is not
    cached."""

    def __init__(self, cache_rules: dict[str, dict[str, typing.Any]], **options: typing.Any) -> None:
        super().__init__(**options)
        self.rules = [(pattern, {
            "ttl": rule.get("ttl", self.default_ttl),
            "methods": {m.upper() for m in rule.get("methods", self.methods)},
            "status_codes": set(rule.get("status_codes", self.status_codes)),
        }) for pattern, rule in cache_rules.items()]

    def _rule(self, path: str) -> dict[str, typing.Any] | None:
        if super()._rule(path) is None:
            return None
        for pattern, rule in self.rules:
            if fnmatch.fnmatchcase(path, pattern):
                return rule
        return None


def create_api_cache_middleware(ttl: int = 300, **options: typing.Any) -> SmartCacheMiddleware:
    """JSON APIs: GET answers for `ttl` seconds, varying on Accept."""
    options.setdefault("cache_vary_headers", ["accept"])
    return SmartCacheMiddleware(default_ttl=ttl, **options)


def create_static_cache_middleware(ttl: int = 86400, **options: typing.Any) -> SmartCacheMiddleware:
    options.setdefault("cache_status_codes", [200, 301, 308])
    return SmartCacheMiddleware(default_ttl=ttl, **options)


def create_page_cache_middleware(ttl: int = 3600, **options: typing.Any) -> SmartCacheMiddleware:
    options.setdefault("cache_vary_headers", ["accept", "accept-language"])
    return SmartCacheMiddleware(default_ttl=ttl, **options)
