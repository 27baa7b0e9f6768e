"""Dependencies: `Depends(fn)`, solved for each request by a plan decided at registration.

    def get_db():
        db = connect()
        try:
            yield db                    # the handler runs here
        finally:
            db.close()                  # the clean-up, once the response is made

    @app.get("/items")
    def items(db: Annotated[Connection, Depends(get_db)], user=Depends(current_user)): ...

A route's plan lists every dependency it needs (the app's, its routers', its decorator's
`dependencies=[...]`, then its parameters', each with its own sub-dependencies) once, in
that order, each after those it depends on. A dependency used several times is
called once per request, unless one use says `use_cache=False`. For a request, every
parameter of every dependency and of the handler is bound first (so one 422 lists every
error), then the dependencies are called in order, then the handler.

Where each runs:
- a `def` handler whose dependencies are all `def` functions or generators (or `async def`
  ones that never await): everything, the handler, the response's serialisation and the
  clean-ups, in ONE pool job: no hop per dependency (fastapi#3205);
- otherwise on the loop: `async def` dependencies are awaited there, and each run of
  consecutive `def` ones is one pool job (a `def` handler joins the last).

Clean-ups (the code after `yield`) run in reverse order once the handler's response is
made, before it is written (and before after-request hooks). An exception from the
handler, or from a later dependency, is thrown into each generator at its `yield`, as
FastAPI does: a generator may catch it and raise another, which then replaces it. A
clean-up that raises is logged and answered like an error in the handler (500, or the
status of an HTTPException): the response is not sent yet, and the work it reports may not
be done (a failed commit). An exception a generator swallows still answers: the handler
made no response.

`Depends("name")` (Catzilla 0.2.3) resolves the service `name` through the resolver the
service container installs with `set_service_resolver` (without one, it is an error
naming the service), where the handler runs.
"""
from __future__ import annotations

import contextvars
import inspect
import logging
import typing

from .binding import Binding
from .errors import DefinitionError, RequestValidationError
from .kinds import HandlerKind, classify
from .params import Depends
from .request import Request

__all__ = ["Depends", "Plan", "set_service_resolver", "resolve_service"]

logger = logging.getLogger("catzilla")

ServiceResolver = typing.Callable[[str, Request], typing.Any]

# How a dependency is called (decided at registration).
SYNC, GENERATOR, ASYNC, ASYNC_INLINE, ASYNC_GENERATOR, SERVICE = range(6)
_ON_LOOP = frozenset({ASYNC, ASYNC_INLINE, ASYNC_GENERATOR, SERVICE})  # in a plan run on the loop
_IN_JOB = frozenset({SYNC, GENERATOR, ASYNC_INLINE, SERVICE})  # what one pool job can run

_service_resolver: ServiceResolver | None = None


def set_service_resolver(resolver: ServiceResolver | None) -> None:
    """Install how `Depends("name")` finds a service: `resolver(name, request)` returns it
    (or raises LookupError). The service container calls this once; None removes it."""
    global _service_resolver
    _service_resolver = resolver


def resolve_service(name: str, request: Request) -> typing.Any:
    if _service_resolver is None:
        raise LookupError(f"Depends({name!r}) names a service, but no service container is "
                          f"installed (register the service with app.register_service({name!r}, ...))")
    return _service_resolver(name, request)


class Node:
    """One dependency call in a plan."""

    __slots__ = ("call", "binding", "subs", "kind", "index", "label")

    def __init__(self, call: typing.Any, binding: Binding | None, subs: list[tuple[str, int]], kind: int,
                 label: str) -> None:
        self.call = call
        self.binding = binding  # None for a service
        self.subs = subs  # (parameter name, index of the node giving it)
        self.kind = kind
        self.index = 0
        self.label = label


def _kind(call: typing.Any) -> int:
    target = getattr(call, "__call__", None) if not inspect.isroutine(call) and not inspect.isclass(call) else call
    for fn in (call, target):
        if inspect.isasyncgenfunction(fn):
            return ASYNC_GENERATOR
        if inspect.isgeneratorfunction(fn):
            return GENERATOR
    kind = classify(call)
    return SYNC if kind is HandlerKind.SYNC else ASYNC_INLINE if kind is HandlerKind.ASYNC_INLINE else ASYNC


def _label(call: typing.Any) -> str:
    if isinstance(call, str):
        return f"service {call!r}"
    return getattr(call, "__qualname__", None) or getattr(call, "__name__", None) or repr(call)


class Plan:
    """How one route's dependencies and handler run: built once, at registration."""

    def __init__(self, route: typing.Any, dependencies: typing.Sequence[typing.Any], respond: typing.Any) -> None:
        self.endpoint = route.endpoint
        self.binding: Binding = route.binding
        self.respond = respond  # the handler's result -> Response (see returns.py)
        self.sync_handler = route.kind is HandlerKind.SYNC
        self._path_names = route.path_names
        self._cached: dict[typing.Any, int] = {}
        nodes: list[Node] = []
        self.nodes = nodes
        for depends in dependencies:  # the layers' and the decorator's: run, values unused
            if not isinstance(depends, Depends):
                raise DefinitionError(f"dependencies=[...] of {self.binding.owner} takes Depends(...) "
                                      f"items, got {depends!r}")
            self._resolve(depends, None, [route.endpoint])
        self.handler_subs = [(name, self._resolve(depends, annotation, [route.endpoint]))
                             for name, depends, annotation in self.binding.dependencies]
        # `nodes` are in the order they are called: each after its sub-dependencies,
        # otherwise as declared. Bindings that read anything, by slot (the handler's is the last).
        self.bindings = [(node.index, node.binding) for node in nodes
                         if node.binding is not None and not node.binding.trivial]
        if not self.binding.trivial:
            self.bindings.append((len(nodes), self.binding))
        self.has_exits = any(node.kind in (GENERATOR, ASYNC_GENERATOR) for node in nodes)
        # One pool job for everything (see the module docstring), or a run on the loop.
        self.one_job = self.sync_handler and all(node.kind in _IN_JOB for node in nodes)
        self.stages = self._stages()
        # Without clean-ups, the common shapes (a def handler in one job, or async def
        # dependencies and handler) get straight-line code: the shortest per-request path.
        if not self.has_exits:
            if self.one_job:
                self.run_job = self._compile(False)  # type: ignore[method-assign]
            elif not self.sync_handler and all(node.kind in (ASYNC, ASYNC_INLINE, SERVICE) for node in nodes):
                self.run = self._compile(True)  # type: ignore[method-assign]
        # Whether a run on the loop can suspend (Pipeline.may_suspend).
        self.may_suspend = self.sync_handler or route.kind is HandlerKind.ASYNC or any(
            node.kind not in (ASYNC_INLINE, SERVICE) for node in nodes)

    def _resolve(self, depends: Depends, annotation: typing.Any, chain: list[typing.Any]) -> int:
        call = depends.dependency
        if call is None:  # `Annotated[Model, Depends()]`: the annotation is the dependency
            call = annotation
        if call is None or not (callable(call) or isinstance(call, str)):
            raise DefinitionError(f"{depends!r} in {self.binding.owner}: the dependency must be a callable "
                                  f"or a service name, got {call!r}")
        key = ("service", call) if isinstance(call, str) else call
        if depends.use_cache and key in self._cached:
            return self._cached[key]
        if any(c is call for c in chain):
            path = " -> ".join(_label(c) for c in chain[1:] + [call])
            raise DefinitionError(f"dependency cycle in {self.binding.owner}: {path}")
        if isinstance(call, str):
            node = Node(call, None, [], SERVICE, _label(call))
        else:
            binding = Binding(call, self._path_names, request_first=False)
            subs = [(name, self._resolve(sub, sub_annotation, chain + [call]))
                    for name, sub, sub_annotation in binding.dependencies]
            node = Node(call, binding, subs, _kind(call), _label(call))
        node.index = len(self.nodes)
        self.nodes.append(node)
        if depends.use_cache:
            self._cached[key] = node.index
        return node.index

    def _stages(self) -> list[tuple[bool, list[Node]]]:
        """For a run on the loop: (in the pool?, nodes), consecutive `def` ones together."""
        stages: list[tuple[bool, list[Node]]] = []
        for node in self.nodes:
            pooled = node.kind not in _ON_LOOP
            if stages and stages[-1][0] == pooled:
                stages[-1][1].append(node)
            else:
                stages.append((pooled, [node]))
        return stages

    # -- the per-request path ------------------------------------------------------------

    def bind_all(self, request: Request) -> list[typing.Any]:
        """Every dependency's and the handler's parameters, by slot; every error in one 422."""
        bound: list[typing.Any] = [None] * (len(self.nodes) + 1)
        errors: list[dict[str, typing.Any]] | None = None
        for slot, binding in self.bindings:
            try:
                bound[slot] = binding.bind(request)
            except RequestValidationError as exc:
                errors = exc.errors if errors is None else errors + [e for e in exc.errors if e not in errors]
        if errors:
            raise RequestValidationError(errors)
        return bound

    def run_job(self, request: Request) -> typing.Any:
        """The one pool job of a `one_job` plan: dependencies, handler, response, clean-ups."""
        bound = self.bind_all(request)
        values: list[typing.Any] = [None] * len(self.nodes)
        exits: list[typing.Any] = []
        try:
            self._call_nodes(self.nodes, request, bound, values, exits)
            response = self._call_handler(request, bound, values)
        except BaseException as exc:
            if exits:
                raise _unwind(exits, exc)  # `exc`, or what a clean-up raised instead
            raise
        if exits:
            failure = _unwind(exits, None)
            if failure is not None:
                raise failure
        return response

    async def run(self, request: Request, pool_run: typing.Any) -> typing.Any:
        """A plan on the loop (an `async def` handler, or `async def` dependencies)."""
        bound = self.bind_all(request)
        values: list[typing.Any] = [None] * len(self.nodes)
        exits: list[typing.Any] = []
        try:
            stages = self.stages
            last = len(stages) - 1
            for position, (pooled, nodes) in enumerate(stages):
                if pooled:
                    with_handler = self.sync_handler and position == last
                    result = await pool_run(contextvars.copy_context().run, self._job_stage, nodes, request,
                                            bound, values, exits, with_handler)
                    if with_handler:
                        return await self._finish(result, exits, pool_run)
                    continue
                for node in nodes:
                    kwargs = _node_kwargs(node, bound, values)
                    kind = node.kind
                    if kind == ASYNC_GENERATOR:
                        generator = node.call(**kwargs)
                        values[node.index] = await generator.__anext__()
                        exits.append(generator)
                    elif kind == SERVICE:
                        values[node.index] = resolve_service(node.call, request)
                    else:
                        values[node.index] = await node.call(**kwargs)
            if self.sync_handler:
                response = await pool_run(contextvars.copy_context().run, self._call_handler, request, bound, values)
            else:
                kwargs = self._handler_kwargs(bound, values)
                endpoint = self.endpoint
                result = await (endpoint(request, **kwargs) if self.binding.pass_request else endpoint(**kwargs))
                response = self.respond(result)
        except BaseException as exc:
            if exits:
                failure = await _unwind_on_loop(exits, exc, pool_run)
                raise failure
            raise
        return await self._finish(response, exits, pool_run)

    def _compile(self, awaited: bool) -> typing.Callable[..., typing.Any]:
        """This plan as one function, `run_job(request)` (`awaited`: `async run(request,
        pool_run)`), written out once here: for two dependencies,

            async def run(request, pool_run=None):
                v0 = await c0()
                v1 = await c1(config=v0)
                return respond(await endpoint(request, text=v1, config=v0))
        """
        namespace: dict[str, typing.Any] = {"respond": self.respond, "endpoint": self.endpoint,
                                            "bind_all": self.bind_all, "resolve_service": resolve_service,
                                            "drive": _drive}
        lines = ["bound = bind_all(request)"] if self.bindings else []
        bound_slots = {slot for slot, _ in self.bindings}

        def arguments(slot: int, subs: list[tuple[str, int]]) -> str:
            parts = [f"**bound[{slot}]"] if slot in bound_slots else []
            parts += [f"{name}=v{index}" for name, index in subs]
            return ", ".join(parts)

        for node in self.nodes:
            i = node.index
            namespace[f"c{i}"] = node.call
            call = f"c{i}({arguments(i, node.subs)})"
            if node.kind == SERVICE:
                lines.append(f"v{i} = resolve_service(c{i}, request)")
            elif awaited:
                lines.append(f"v{i} = await {call}")
            elif node.kind == ASYNC_INLINE:
                lines.append(f"v{i} = drive({call})")
            else:
                lines.append(f"v{i} = {call}")
        handler_args = arguments(len(self.nodes), self.handler_subs)
        if self.binding.pass_request:
            handler_args = "request" + (", " + handler_args if handler_args else "")
        lines.append(f"return respond({'await ' if awaited else ''}endpoint({handler_args}))")
        source = ("async def run(request, pool_run=None):\n" if awaited else "def run_job(request):\n") \
            + "".join(f"    {line}\n" for line in lines)
        exec(compile(source, f"<plan of {self.binding.owner}>", "exec"), namespace)
        function = namespace["run" if awaited else "run_job"]
        function.__source__ = source
        return function

    async def _finish(self, response: typing.Any, exits: list[typing.Any], pool_run: typing.Any) -> typing.Any:
        if exits:
            failure = await _unwind_on_loop(exits, None, pool_run)
            if failure is not None:
                raise failure
        return response

    def _job_stage(self, nodes: list[Node], request: Request, bound: list[typing.Any], values: list[typing.Any],
                   exits: list[typing.Any], with_handler: bool) -> typing.Any:
        self._call_nodes(nodes, request, bound, values, exits)
        return self._call_handler(request, bound, values) if with_handler else None

    def _call_nodes(self, nodes: list[Node], request: Request, bound: list[typing.Any], values: list[typing.Any],
                    exits: list[typing.Any]) -> None:
        for node in nodes:
            kwargs = _node_kwargs(node, bound, values)
            kind = node.kind
            if kind == SYNC:
                values[node.index] = node.call(**kwargs)
            elif kind == GENERATOR:
                generator = node.call(**kwargs)
                values[node.index] = next(generator)
                exits.append(generator)
            elif kind == SERVICE:
                values[node.index] = resolve_service(node.call, request)
            else:  # an `async def` that never awaits, driven here
                values[node.index] = _drive(node.call(**kwargs))

    def _handler_kwargs(self, bound: list[typing.Any], values: list[typing.Any]) -> dict[str, typing.Any]:
        kwargs = bound[-1]
        if kwargs is None:
            kwargs = {}
        for name, index in self.handler_subs:
            kwargs[name] = values[index]
        return kwargs

    def _call_handler(self, request: Request, bound: list[typing.Any], values: list[typing.Any]) -> typing.Any:
        kwargs = self._handler_kwargs(bound, values)
        endpoint = self.endpoint
        result = endpoint(request, **kwargs) if self.binding.pass_request else endpoint(**kwargs)
        return self.respond(result)


def _node_kwargs(node: Node, bound: list[typing.Any], values: list[typing.Any]) -> dict[str, typing.Any]:
    kwargs = bound[node.index]
    if kwargs is None:
        kwargs = {}
    for name, index in node.subs:
        kwargs[name] = values[index]
    return kwargs


def _drive(coroutine: typing.Any) -> typing.Any:
    """Run a coroutine that cannot suspend (kinds.ASYNC_INLINE) to its end, here."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError(f"{coroutine!r} suspended although it has no await")


def _unwind(exits: list[typing.Any], exc: BaseException | None) -> BaseException | None:
    """Finish `def` generators, last entered first, throwing `exc` (the handler's) into
    them; the exception that remains (None: all went well)."""
    while exits:
        generator = exits.pop()
        exc = _finish_generator(generator, exc)
    return exc


def _finish_generator(generator: typing.Any, exc: BaseException | None) -> BaseException | None:
    try:
        if exc is None:
            next(generator)
        else:
            generator.throw(exc)
    except StopIteration:
        return exc  # finished (a swallowed exception still answers: there is no response)
    except BaseException as raised:
        if raised is not exc:
            _log_cleanup(generator, raised)
        return raised
    generator.close()
    return RuntimeError(f"dependency {generator.__qualname__} yielded more than once")


async def _finish_async_generator(generator: typing.Any, exc: BaseException | None) -> BaseException | None:
    try:
        if exc is None:
            await generator.__anext__()
        else:
            await generator.athrow(exc)
    except StopAsyncIteration:
        return exc
    except BaseException as raised:
        if raised is not exc:
            _log_cleanup(generator, raised)
        return raised
    await generator.aclose()
    return RuntimeError(f"dependency {generator.__qualname__} yielded more than once")


async def _unwind_on_loop(exits: list[typing.Any], exc: BaseException | None,
                          pool_run: typing.Any) -> BaseException | None:
    """_unwind for a plan on the loop: `async` generators here, runs of `def` ones in one
    pool job each."""
    while exits:
        if inspect.isasyncgen(exits[-1]):
            exc = await _finish_async_generator(exits.pop(), exc)
            continue
        run: list[typing.Any] = []
        while exits and not inspect.isasyncgen(exits[-1]):
            run.insert(0, exits.pop())
        exc = await pool_run(contextvars.copy_context().run, _unwind, run, exc)
    return exc


def _log_cleanup(generator: typing.Any, raised: BaseException) -> None:
    # One line: the traceback is logged with the error response it becomes.
    logger.warning("the clean-up of dependency %s raised %s: %s",
                   getattr(generator, "__qualname__", generator), type(raised).__name__, raised)
