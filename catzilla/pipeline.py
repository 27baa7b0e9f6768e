"""What runs around a handler: hooks, wrapping middleware and exception handlers, compiled
once per route when the app starts, so a request only walks a prepared chain.

Layers nest from the outside in: the app, each router the route was included through, the
route itself. For a request:

    app middleware -> router middleware -> route middleware        (dispatch(request, call_next))
      -> before-request hooks, app's first                        ((request) -> Response | None)
        -> the handler (parameters bound, return value made a Response)
      <- after-request hooks, the route's first                    ((request, response) -> Response)

A before-hook that returns something short-circuits: that is the response, and the handler
does not run (the after-hooks still do). A chain that cannot suspend, whose middleware all
come in two halves (middleware.base.PhasedMiddleware), runs as one plain call
(`run_inline`, a function written out for the chain when it is compiled: no Task, no
coroutine per layer, no loop; each hook's and the handler's coroutine is driven where it is
made); any other runs as the coroutine `run`. Where each piece runs:
- around a `def` handler, `def` hooks run in the same pool job as the handler (one hop per
  request, whatever the chain); `async def` hooks run on the loop, before the job (before-
  hooks) and after it (after-hooks);
- around an `async def` handler, `async def` hooks run on the loop and each `def` hook in
  the pool, in order: a `def` hook may block (file or socket I/O, or Catzilla 0.2.3's
  `asyncio.run(...)` around a coroutine, which cannot run on a thread whose loop is
  running), exactly as a `def` handler may;
- `def` exception handlers run in the pool, `async def` ones on the loop.
Exceptions a handler, a hook or a middleware's `call_next` raise are looked up among the
exception handlers (innermost layer first; a status-code handler before a class one for
an HTTPException, then the class's MRO); HTTPException, validation errors and bad bodies
have the built-in answers. Anything else answers 500, through an `Exception` or 500
handler if one is registered; if that handler fails too, the plain 500 goes out and both
tracebacks are logged.

A route with dependencies, a response model or a status code runs its plan (see
dependencies.py for where each part runs): inside its chain, or, when nothing wraps it, on
the direct path (DirectPlan). A route with none of these has no pipeline at all (`Route.pipeline` is None) and keeps the
server's direct path.
"""
from __future__ import annotations

import contextvars
import copy
import dis
import functools
import inspect
import logging
import types
import typing

from ._native import drive
from .binding import BadRequest, Binding
from .errors import HTTPException, RequestValidationError
from .kinds import HandlerKind, classify, may_suspend
from .request import Request
from .responses import Response, error_response, to_response

__all__ = ["Layer", "Pipeline", "DirectPlan", "call_handler", "compile_pipeline", "default_error_response",
           "refusal", "router_refusal"]

logger = logging.getLogger("catzilla")

Hook = typing.Callable[..., typing.Any]
ExceptionHandler = typing.Callable[[Request, BaseException], typing.Any]
# Runs `fn(*args)` in the worker's pool and returns an awaitable of its result.
PoolRun = typing.Callable[..., typing.Awaitable[typing.Any]]

# The 404 or 405 the router decided for a request no route answers: the app's chain around
# it raises this where a handler would run. Set in the request's own context by the server
# (the chain runs in a copy of the loop's context per request), so nothing routes twice.
refusal: contextvars.ContextVar[HTTPException] = contextvars.ContextVar("catzilla_refusal")


_UNSET = object()


def adopt(context: contextvars.Context) -> None:
    """Take into the current context what a pool job set in `context`, the copy of it the
    job ran in, as if the job had run here: middleware sees after `call_next` what a def
    handler or hook set, as it does for async ones. One comparison when the job set
    nothing (a copy shares its variables' map until a variable is set). A variable the job
    reset to no value keeps its value here (a context cannot unset without the token)."""
    if context == contextvars.copy_context():
        return
    for var, value in context.items():
        if var.get(_UNSET) is not value:
            var.set(value)


async def in_pool(pool_run: PoolRun, fn: typing.Callable[..., typing.Any], *args: typing.Any) -> typing.Any:
    """`fn(*args)` in the pool, in a copy of the current context, then `adopt`ed back (also
    when it raised; not when the wait was cancelled: the job may still be running)."""
    context = contextvars.copy_context()
    try:
        result = await pool_run(context.run, fn, *args)
    except Exception:
        adopt(context)
        raise
    adopt(context)
    return result


def router_refusal(allow: str | None) -> HTTPException:
    """What the router's answer to a request no route takes becomes: 404, or 405 with the
    methods there are (`allow`, from Router.resolve)."""
    if allow is None:
        return HTTPException(404, "Not Found")
    return HTTPException(405, "Method Not Allowed", {"allow": allow})


class Layer:
    """What one level (the app, a router, a route) adds around the handlers below it."""

    __slots__ = ("middleware", "before", "after", "exception_handlers")

    def __init__(self) -> None:
        self.middleware: list[typing.Any] = []  # built middleware objects, or Middleware specs
        self.before: list[Hook] = []
        self.after: list[Hook] = []
        self.exception_handlers: dict[typing.Any, ExceptionHandler] = {}

    def __bool__(self) -> bool:
        return bool(self.middleware or self.before or self.after or self.exception_handlers)


def is_async_callable(fn: typing.Any) -> bool:
    return classify(fn) is not HandlerKind.SYNC


# Instructions that only load a value: what an argument of `call_next(...)` may be made of.
_SIMPLE_LOADS = frozenset({"LOAD_FAST", "LOAD_CONST", "LOAD_DEREF", "LOAD_GLOBAL"})
_ASYNC_BLOCKS = frozenset(name for name in ("GET_AITER", "GET_ANEXT", "BEFORE_ASYNC_WITH") if name in dis.opmap)


def awaits_only_call_next(dispatch: typing.Any) -> bool:
    """Whether a middleware's `dispatch(request, call_next)` awaits nothing but calls of
    `call_next` (with plain names or constants as arguments): then it suspends only where
    the rest of the chain does, and a chain that cannot suspend needs no Task for it (like
    the built-in CORS, GZip, TrustedHost and RequestID middleware). Anything else (an
    `async with`, `async for`, any other await) is assumed to need a Task. Read once, from
    the bytecode, when the chain is compiled."""
    fn = inspect.unwrap(getattr(dispatch, "__func__", dispatch))
    code = getattr(fn, "__code__", None)
    if code is None or not inspect.iscoroutinefunction(fn) or code.co_argcount < 2:
        return False
    call_next = code.co_varnames[code.co_argcount - 1]
    instructions = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
    for k, instruction in enumerate(instructions):
        if instruction.opname in _ASYNC_BLOCKS:
            return False
        if instruction.opname != "GET_AWAITABLE":
            continue
        # [PUSH_NULL] LOAD_FAST call_next, argument loads, [PRECALL], CALL, GET_AWAITABLE
        j = k - 1
        if j < 0 or instructions[j].opname != "CALL":
            return False
        argc = instructions[j].arg or 0
        j -= 1
        if j >= 0 and instructions[j].opname == "PRECALL":
            j -= 1
        arguments = instructions[j - argc + 1:j + 1] if argc else []
        if len(arguments) != argc or any(a.opname not in _SIMPLE_LOADS for a in arguments):
            return False
        j -= argc
        if j < 0 or instructions[j].opname != "LOAD_FAST" or instructions[j].argval != call_next:
            return False
    return True


_RETURN_GENERATOR = dis.opmap.get("RETURN_GENERATOR")  # (3.11+: how a coroutine's code starts)
_PROLOGUE_SETUP = frozenset(name for name in ("MAKE_CELL", "COPY_FREE_VARS") if name in dis.opmap)


def plain_twin(fn: typing.Any) -> typing.Callable[..., typing.Any] | None:
    """For an `async def` function whose body cannot suspend, a plain function with the same
    body: calling it returns what driving the coroutine would, with no coroutine object
    made, started and freed (about half the cost of a hook's call). The body's code is the
    same but for its first step, which makes the coroutine object (RETURN_GENERATOR, and the
    POP_TOP after it), made a no-op. None where that cannot be done with certainty: not a
    plain function, a body that can suspend, or an interpreter whose code does not start
    as expected (then the coroutine is driven, as before)."""
    if type(fn) is not types.FunctionType or _RETURN_GENERATOR is None:
        return None
    code = fn.__code__
    if not code.co_flags & inspect.CO_COROUTINE or may_suspend(code):
        return None
    instructions = list(dis.get_instructions(code))
    k = 0
    while k < len(instructions) and instructions[k].opname in _PROLOGUE_SETUP:
        k += 1
    if k + 2 >= len(instructions) or instructions[k].opname != "RETURN_GENERATOR" \
            or instructions[k + 1].opname != "POP_TOP" or instructions[k + 2].opname != "RESUME" \
            or any(i.opname == "RETURN_GENERATOR" for i in instructions[k + 1:]):
        return None
    raw = bytearray(code.co_code)
    nop = dis.opmap["NOP"]
    for offset in (instructions[k].offset, instructions[k + 1].offset):
        raw[offset:offset + 2] = bytes((nop, 0))
    twin = types.FunctionType(code.replace(co_code=bytes(raw), co_flags=code.co_flags & ~inspect.CO_COROUTINE),
                              fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__kwdefaults__ = fn.__kwdefaults__
    twin.__qualname__ = fn.__qualname__
    return twin


def call_handler(route: typing.Any, request: Request, pool_run: PoolRun | None = None) -> typing.Any:
    """Bind the route's parameters from `request` and call its handler. A route with a plan
    (dependencies, a response model, a status code) gives its Response: from the one pool
    job when it runs there (see dependencies.py), else a coroutine of it (`pool_run`)."""
    plan = route.plan
    if plan is not None:
        return plan.run_job(request) if plan.one_job else plan.run(request, pool_run)
    binding = route.binding
    kwargs = None if binding.trivial else binding.bind(request)
    if binding.pass_request:
        return route.endpoint(request) if kwargs is None else route.endpoint(request, **kwargs)
    return route.endpoint() if kwargs is None else route.endpoint(**kwargs)


def default_error_response(exc: BaseException) -> Response | None:
    """The built-in answer to an exception the framework knows, or None (a 500)."""
    if isinstance(exc, HTTPException):
        return error_response(exc.status_code, exc.detail, exc.headers)
    if isinstance(exc, RequestValidationError):
        return error_response(422, exc.errors)
    if isinstance(exc, BadRequest):
        return error_response(400, str(exc))
    return None


def _lookup(handlers: dict[typing.Any, ExceptionHandler], exc: BaseException) -> ExceptionHandler | None:
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


class Pipeline:
    """One route's chain (or, with no route, the app's around its 404/405 answers).
    `await run(request)` -> Response, on the loop."""

    direct = None  # see DirectPlan

    def __init__(self, route: typing.Any, layers: list[Layer], app: typing.Any, pool_run: PoolRun) -> None:
        self.route = route
        self.app = app
        self.pool_run = pool_run
        self.handlers: dict[typing.Any, ExceptionHandler] = {}
        middleware: list[typing.Any] = []
        before: list[Hook] = []
        after: list[Hook] = []
        for layer in layers:  # outermost first
            self.handlers.update(layer.exception_handlers)  # inner layers override
            middleware.extend(layer.middleware)
            before.extend(layer.before)
            after[:0] = layer.after  # the innermost layer's after-hooks run first
        self.middleware = middleware  # built once, when added (see routers.built)
        # A def handler whose dependencies need the loop runs as an async one does (its
        # plan takes it to the pool, see dependencies.py).
        plan = route.plan if route is not None else None
        sync_route = route is not None and route.kind is HandlerKind.SYNC and (plan is None or plan.one_job)
        # Around a def handler, def hooks share its pool job (see the module docstring). On
        # the loop, each hook is kept with whether it must be awaited, decided here.
        self.loop_before = [(h, is_async_callable(h)) for h in before if not sync_route or is_async_callable(h)]
        self.job_before = [h for h in before if sync_route and not is_async_callable(h)]
        self.job_after = [h for h in after if sync_route and not is_async_callable(h)]
        self.loop_after = [(h, is_async_callable(h)) for h in after if not sync_route or is_async_callable(h)]
        self.sync_route = sync_route
        # Whether anything in the chain can suspend (see Executor.start_pipeline): wrapping
        # middleware awaits call_next, a def handler waits for its pool job, and so do def
        # exception handlers; only hooks and handlers that never await cannot.
        self.may_suspend = not all(awaits_only_call_next(mw.dispatch) for mw in middleware) \
            or route is None or route.kind is not HandlerKind.ASYNC_INLINE \
            or any(classify(h) is HandlerKind.ASYNC for h in before + after) \
            or any(not awaited for _, awaited in self.loop_before + self.loop_after) \
            or any(classify(h) is not HandlerKind.ASYNC_INLINE for h in self.handlers.values()) \
            or (plan is not None and plan.may_suspend)
        call: typing.Callable[[Request], typing.Awaitable[Response]] = self._endpoint
        for mw in reversed(self.middleware):
            # A partial (C, no frame of its own): dispatch(request, call_next=inner).
            call = functools.partial(mw.dispatch, call_next=call)
        self._call = call
        # A chain that cannot suspend, whose middleware all come in two plain halves (see
        # middleware.base.PhasedMiddleware), runs as one function call: `run_inline`, else
        # None (the executor drives `run`'s coroutine).
        phases = [getattr(mw, "phases", None) for mw in middleware]
        self.run_inline = None
        # Hooks and handler of run_inline called as plain functions: {the original: its
        # twin} (see plain_twin; the loop monitor knows the twins' code too).
        self.twins: dict[typing.Any, typing.Any] = {}
        if not self.may_suspend and None not in phases:
            self.on_request = tuple(first for first, _ in phases)
            self.on_response = tuple(second for _, second in phases)
            self.run_inline = self._compile_inline()

    async def run(self, request: Request) -> Response:
        try:
            response = await self._call(request)
        except Exception as exc:
            return await self._answer(request, exc, last_resort=True)
        if not isinstance(response, Response):
            logger.error("middleware of %s returned %r, not a Response", self.where(), response)
            return error_response(500, "Internal Server Error")
        return response

    def _compile_inline(self) -> typing.Callable[[Request], Response]:
        """`run`, for a chain that cannot suspend, as one function made for this chain: the
        middleware's halves, hooks and handler called in a row with no loop and no frame of
        the chain's own between them, each hook's and the handler's coroutine driven to its
        end where it is made. The same steps and the same answers to exceptions as `run`
        and `_endpoint` (an exception from inside goes past every middleware to the last
        resort, as through a dispatch that does not catch it). Written out once, here, from
        what the chain holds: a request walks straight code."""
        names: dict[str, typing.Any] = {
            "Response": Response, "to_response": to_response, "drive": drive, "checked": _checked,
            "answer": self._answer, "refusal": refusal, "call_handler": call_handler,
            "route": self.route, "pool_run": self.pool_run, "failed": self._not_a_response,
        }
        core = ["try:"]
        depth = 1
        for j, (hook, _) in enumerate(self.loop_before):  # all awaited: else may_suspend
            call = self._inline_call(names, f"before{j}", hook, "(request)")
            core += [f"{'    ' * depth}result = {call}",
                     f"{'    ' * depth}if result is not None:",
                     f"{'    ' * depth}    response = result if isinstance(result, Response) else to_response(result)",
                     f"{'    ' * depth}else:"]
            depth += 1
        route = self.route
        indent = "    " * depth
        if route is None:  # no route: the 404 or 405 the router decided
            core.append(f"{indent}raise refusal.get()")
        else:
            if route.plan is None and route.binding.trivial:  # call_handler's steps, decided now
                call = self._inline_call(names, "endpoint", route.endpoint,
                                         "(request)" if route.binding.pass_request else "()")
            else:
                call = "drive(call_handler(route, request, pool_run))"
            core += [f"{indent}result = {call}",
                     f"{indent}response = result if isinstance(result, Response) else to_response(result)"]
        for k, (hook, _) in enumerate(self.loop_after):
            call = self._inline_call(names, f"after{k}", hook, "(request, response)")
            core += [f"    result = {call}",
                     f"    response = result if isinstance(result, Response) else checked(after{k}, result, response)"]
        core += ["except Exception as exc:", "    response = drive(answer(request, exc))"]
        # The middleware around it, the outermost first: one that answers is seen by the
        # outer ones' second halves only.
        body = core
        for i in range(len(self.on_request) - 1, -1, -1):
            names[f"on_request{i}"] = self.on_request[i]
            wrapped = [f"state{i} = on_request{i}(request)",
                       f"if isinstance(state{i}, Response):",
                       f"    response = state{i}",
                       "else:"] + ["    " + line for line in body]
            if self.on_response[i] is not None:
                names[f"on_response{i}"] = self.on_response[i]
                wrapped.append(f"    response = on_response{i}(request, response, state{i})")
            body = wrapped
        source = "\n".join(
            ["def run_inline(request):", "    try:"] + ["        " + line for line in body]
            + ["    except Exception as exc:",
               "        return drive(answer(request, exc, True))",
               "    if not isinstance(response, Response):",
               "        return failed(response)",
               "    return response"])
        exec(compile(source, f"<chain of {self.where()}>", "exec"), names)  # noqa: S102 - our own text
        return names["run_inline"]  # type: ignore[no-any-return]

    def _inline_call(self, names: dict[str, typing.Any], name: str, fn: typing.Any, arguments: str) -> str:
        """The call of `fn` (a hook or handler that cannot suspend) in the written-out chain:
        its plain twin's, or its coroutine's, driven."""
        twin = plain_twin(fn)
        if twin is None:
            names[name] = fn
            return f"drive({name}{arguments})"
        names[name] = self.twins[fn] = twin
        return f"{name}{arguments}"

    def _not_a_response(self, response: typing.Any) -> Response:
        logger.error("middleware of %s returned %r, not a Response", self.where(), response)
        return error_response(500, "Internal Server Error")

    def where(self) -> str:
        route = self.route
        return f"{route.method} {route.path}" if route is not None else "unmatched requests"

    async def _endpoint(self, request: Request) -> Response:
        route = self.route
        try:
            for hook, awaited in self.loop_before:
                result = (await hook(request)) if awaited else \
                    (await in_pool(self.pool_run, hook, request))
                if result is not None:
                    response = result if isinstance(result, Response) else to_response(result)
                    if self.job_after:  # the def after-hooks still run, in the pool
                        response = await in_pool(self.pool_run, self._job_after, request, response)
                    break
            else:
                if route is None:  # no route: the 404 or 405 the router decided
                    raise refusal.get()
                if self.sync_route:
                    # in_pool's steps, inline on the path of every request to a def route
                    context = contextvars.copy_context()
                    try:
                        response = await self.pool_run(context.run, self._job, request)
                    except Exception:
                        adopt(context)
                        raise
                    adopt(context)
                    if not isinstance(response, Response):  # a def handler returned an awaitable
                        response = self._job_after(request, to_response(await response))
                else:
                    result = await call_handler(route, request, self.pool_run)
                    response = result if isinstance(result, Response) else to_response(result)
            for hook, awaited in self.loop_after:
                result = (await hook(request, response)) if awaited else \
                    (await in_pool(self.pool_run, hook, request, response))
                response = result if isinstance(result, Response) else _checked(hook, result, response)
            return response
        except Exception as exc:
            return await self._answer(request, exc)

    def _job(self, request: Request) -> Response:
        """In a pool thread: def before-hooks, the def handler, def after-hooks."""
        from .background_tasks import current_request

        current_request.set(request)
        for hook in self.job_before:
            result = hook(request)
            if result is not None:
                response = to_response(result)
                break
        else:
            result = call_handler(self.route, request)
            if isinstance(result, Response):  # first: the Awaitable ABC's check is a Python call
                response = result
            elif inspect.isawaitable(result):
                return result  # awaited on the loop; the def after-hooks run there after it
            else:
                response = to_response(result)
        return self._job_after(request, response)

    def _job_after(self, request: Request, response: Response) -> Response:
        for hook in self.job_after:
            response = _checked(hook, hook(request, response), response)
        return response

    async def _answer(self, request: Request, exc: Exception, last_resort: bool = False) -> Response:
        """The response for `exc`: a registered handler's, else the built-in one. Inside the
        middleware (not `last_resort`), an exception nobody handles goes on outwards."""
        handler = _lookup(self.handlers, exc)
        if handler is None and last_resort and not isinstance(exc, HTTPException):
            handler = self.handlers.get(500)
        if handler is None:
            response = default_error_response(exc)
            if response is None:
                if not last_resort:
                    raise exc
                where = f"{self.route.method} {self.route.path}" if self.route is not None else "request"
                logger.error("Exception in handler for %s", where, exc_info=(type(exc), exc, exc.__traceback__))
                response = error_response(500, "Internal Server Error")
            return response
        try:
            if is_async_callable(handler):
                result = await handler(request, exc)
            else:
                result = await in_pool(self.pool_run, handler, request, exc)
            return to_response(result)
        except Exception as failure:
            logger.error("exception handler %r failed on %r", handler, exc,
                         exc_info=(type(failure), failure, failure.__traceback__))
            if not isinstance(exc, HTTPException):
                logger.error("the exception it was handling", exc_info=(type(exc), exc, exc.__traceback__))
            return error_response(500, "Internal Server Error")


def _checked(hook: Hook, result: typing.Any, response: Response) -> Response:
    if result is None:  # the hook only looked (or changed the response in place)
        return response
    if not isinstance(result, Response):
        raise TypeError(f"after-request hook {hook!r} must return a Response or None, got {type(result).__name__}")
    return result


class DirectPlan:
    """A route with a plan (dependencies, a response model...) and nothing around it: served
    on the executor's direct path (Executor.start_pipeline), by `direct`, a copy of the
    route whose handler is the plan itself, `(request) -> Response`."""

    __slots__ = ("route", "direct")
    # Nothing runs around it (what the loop monitor reads of a Pipeline).
    loop_before: tuple[typing.Any, ...] = ()
    loop_after: tuple[typing.Any, ...] = ()
    middleware: tuple[typing.Any, ...] = ()
    run_inline = None  # (Executor.start_pipeline asks this first)

    def __init__(self, route: typing.Any, pool_run: PoolRun) -> None:
        self.route = route
        plan = route.plan
        direct = copy.copy(route)
        if plan.one_job:
            direct.endpoint, direct.kind = plan.run_job, HandlerKind.SYNC
        else:
            direct.endpoint = functools.partial(plan.run, pool_run=pool_run)
            direct.kind = HandlerKind.ASYNC if plan.may_suspend else HandlerKind.ASYNC_INLINE
        direct.binding = _REQUEST_ONLY
        direct.plan = direct.pipeline = None
        self.direct = direct


def _takes_request(request: Request) -> None: ...


_REQUEST_ONLY = Binding(_takes_request, ())


def compile_pipeline(route: typing.Any, layers: list[Layer], app: typing.Any,
                     pool_run: PoolRun) -> Pipeline | DirectPlan | None:
    """The route's chain; None when nothing wraps it and it has no plan (the direct path)."""
    if not any(layers):
        if route is None or route.plan is None:
            return None
        return DirectPlan(route, pool_run)
    return Pipeline(route, layers, app, pool_run)
