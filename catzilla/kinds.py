"""Handler kinds: decided once, when a route is registered, never per request."""
from __future__ import annotations

import dis
import enum
import functools
import inspect
import typing

__all__ = ["HandlerKind", "classify", "may_suspend"]


class HandlerKind(enum.Enum):
    SYNC = "sync"  # a plain callable: runs in the worker's thread pool
    ASYNC = "async"  # a coroutine function that may suspend: a Task on the event loop
    # A coroutine function with no await, async for or async with anywhere in its body: it
    # cannot suspend, so the loop drives it to completion inline, without paying for a Task.
    ASYNC_INLINE = "async_inline"

    @property
    def label(self) -> str:
        """The kind users see in stats and logs: sync or async."""
        return "sync" if self is HandlerKind.SYNC else "async"


# Opcodes through which a coroutine can give control back to the event loop.
_SUSPENDING_OPS = frozenset(
    name for name in ("GET_AWAITABLE", "GET_AITER", "GET_ANEXT", "BEFORE_ASYNC_WITH",
                      "YIELD_VALUE", "SEND", "YIELD_FROM")
    if name in dis.opmap
)


def _target(fn: typing.Any) -> typing.Any:
    """The function that actually runs: through partials, bound methods and `__call__`."""
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif inspect.ismethod(fn):
            fn = fn.__func__
        elif not (inspect.isfunction(fn) or inspect.isbuiltin(fn)) and callable(fn) \
                and hasattr(type(fn), "__call__") and not inspect.isclass(fn):
            fn = type(fn).__call__
        else:
            return inspect.unwrap(fn, stop=lambda f: inspect.iscoroutinefunction(f))


def may_suspend(code: typing.Any) -> bool:
    """Whether a coroutine's code has a step where it can give control back to the loop."""
    return any(instruction.opname in _SUSPENDING_OPS for instruction in dis.get_instructions(code))


def classify(fn: typing.Callable[..., typing.Any]) -> HandlerKind:
    target = _target(fn)
    if not (inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(fn)):
        return HandlerKind.SYNC
    code = getattr(target, "__code__", None)
    if code is None or may_suspend(code):
        return HandlerKind.ASYNC
    return HandlerKind.ASYNC_INLINE
