"""Named services (Catzilla 0.2.3's dependency injection): `@service("users", scope=...)`,
resolved by name for a handler's `Depends("users")`, an `@inject` or `container.resolve()`.

Scopes:
- ``singleton``: one instance per container, made on first use. A container lives in one
  process, so with `catzilla run --workers N` each worker makes its own: what must be
  shared between workers belongs in a database or a cache server, not in a singleton.
- ``request`` (``scoped`` is the same): one instance per request, the same one for every
  handler, hook and middleware of that request, on the event loop or in the thread pool;
  its `close()` (or `cleanup()`), if it has a `def` one, is called once the response is sent.
- ``transient``: a new instance every time one is asked for.

A service's factory (a class or a function) gets its own dependencies the same way: a
parameter whose default is `Depends("name")`, whose name is in `dependencies=[...]`, or
whose name or annotation is that of a registered service. How to build each service is
worked out once, on its first resolution.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
import threading
import typing

from .background_tasks import after_response, current
from .dependencies import set_service_resolver

__all__ = [
    "DIContainer", "DIContext", "ServiceRegistration", "SCOPES", "service", "inject",
    "register_service", "resolve_service", "create_context", "resolution_context",
    "get_default_container", "set_default_container", "clear_default_container",
    "resolve_for_request",
]

SCOPES = ("singleton", "request", "scoped", "transient")
_REQUEST_SCOPES = ("request", "scoped")
_CONTEXT_KEY = "catzilla.di"  # where a request keeps its context (a key no attribute can have)

Factory = typing.Callable[..., typing.Any]

# The context of `with container.resolution_context():` outside a request.
_explicit_context: contextvars.ContextVar["DIContext | None"] = contextvars.ContextVar(
    "catzilla_di_context", default=None)


class ServiceNotFound(LookupError):
    """No service of that name is registered."""


@dataclasses.dataclass
class ServiceRegistration:
    name: str
    factory: Factory
    scope: str
    dependencies: list[str]
    # (parameter, service name) pairs: worked out on first resolution, when every service
    # the factory may need has been registered.
    plan: list[tuple[str, str]] | None = None


class DIContext:
    """The request-scoped instances of one request (or of one `with create_context():`).
    Closing it calls `close()` on those that have one, newest first."""

    def __init__(self, container: "DIContainer") -> None:
        self.container = container
        self.instances: dict[str, typing.Any] = {}

    def resolve(self, name: str) -> typing.Any:
        return self.container.resolve(name, self)

    def close(self) -> None:
        instances, self.instances = self.instances, {}
        for instance in reversed(list(instances.values())):
            closer = getattr(instance, "close", None) or getattr(instance, "cleanup", None)
            if callable(closer) and not inspect.iscoroutinefunction(closer):
                closer()

    cleanup = close

    def __enter__(self) -> "DIContext":
        return self

    def __exit__(self, *exc_info: typing.Any) -> None:
        self.close()


class DIContainer:
    """Registered services and the singletons made so far (per process)."""

    def __init__(self, parent: "DIContainer | None" = None) -> None:
        self.parent = parent
        self._services: dict[str, ServiceRegistration] = {}
        self._singletons: dict[str, typing.Any] = {}
        # Creating a singleton is checked and done under this lock: two pool threads asking
        # for it at once get the same instance. Reentrant: a factory resolves its own deps.
        self._lock = threading.RLock()

    def register(self, name: str, factory: Factory, scope: str = "singleton",
                 dependencies: list[str] | None = None) -> ServiceRegistration:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r} for service {name!r}: one of {', '.join(SCOPES)}")
        if not callable(factory):
            raise TypeError(f"service {name!r}: the factory must be a class or a function, got {factory!r}")
        with self._lock:
            registration = ServiceRegistration(name, factory, scope, list(dependencies or []))
            self._services[name] = registration
            self._singletons.pop(name, None)
        return registration

    def _registration(self, name: str) -> tuple["DIContainer", ServiceRegistration]:
        """The registration of `name` and the container holding it (a child container asks
        its parent; a singleton belongs to the container it was registered in)."""
        container: DIContainer | None = self
        while container is not None:
            registration = container._services.get(name)
            if registration is not None:
                return container, registration
            container = container.parent
        raise ServiceNotFound(f"no service named {name!r} is registered (known: {', '.join(self.list_services()) or 'none'})")

    def resolve(self, name: str, context: DIContext | None = None) -> typing.Any:
        """The instance of service `name` for `context` (default: the current request's, or
        that of the enclosing `resolution_context()`)."""
        owner, registration = self._registration(name)
        scope = registration.scope
        if scope == "singleton":
            try:
                return owner._singletons[name]
            except KeyError:
                with owner._lock:
                    if name not in owner._singletons:
                        owner._singletons[name] = owner._create(registration, context)
                    return owner._singletons[name]
        if scope == "transient":
            return self._create(registration, context)
        if context is None:
            context = current_context(self)
        if context is None:  # outside any request or context: nothing to share it with
            return self._create(registration, None)
        try:
            return context.instances[name]
        except KeyError:
            instance = context.instances[name] = self._create(registration, context)
            return instance

    def _create(self, registration: ServiceRegistration, context: DIContext | None) -> typing.Any:
        if registration.plan is None:
            registration.plan = self._plan(registration)
        arguments = {parameter: self.resolve(service_name, context)
                     for parameter, service_name in registration.plan}
        return registration.factory(**arguments)

    def _plan(self, registration: ServiceRegistration) -> list[tuple[str, str]]:
        factory = registration.factory
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):
            return []
        by_type = {id(r.factory): r.name for r in self._all_registrations() if inspect.isclass(r.factory)}
        plan = []
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            named = dependency_name(parameter.default)
            if named is not None:
                plan.append((parameter.name, named))
            elif parameter.name in registration.dependencies or (
                    parameter.default is parameter.empty and self.has(parameter.name)):
                plan.append((parameter.name, parameter.name))
            elif parameter.default is parameter.empty and id(parameter.annotation) in by_type:
                plan.append((parameter.name, by_type[id(parameter.annotation)]))
        return plan

    def _all_registrations(self) -> list[ServiceRegistration]:
        found: dict[str, ServiceRegistration] = {}
        container: DIContainer | None = self
        while container is not None:
            for name, registration in container._services.items():
                found.setdefault(name, registration)
            container = container.parent
        return list(found.values())

    def has(self, name: str) -> bool:
        return any(r.name == name for r in self._all_registrations())

    is_registered = has_service = has

    def list_services(self) -> list[str]:
        return sorted(r.name for r in self._all_registrations())

    def get_service_info(self, name: str) -> ServiceRegistration | None:
        try:
            return self._registration(name)[1]
        except ServiceNotFound:
            return None

    def create_context(self) -> DIContext:
        return DIContext(self)

    @contextlib.contextmanager
    def resolution_context(self) -> typing.Iterator[DIContext]:
        """A context for request-scoped services outside a request (a script, a test, a
        background task), closed on leaving the `with`."""
        context = DIContext(self)
        token = _explicit_context.set(context)
        try:
            yield context
        finally:
            _explicit_context.reset(token)
            context.close()

    def clear(self) -> None:
        with self._lock:
            self._services.clear()
            self._singletons.clear()

    def create_child_container(self) -> "DIContainer":
        return DIContainer(parent=self)


def current_context(container: DIContainer) -> DIContext | None:
    """The context of the request being handled here (made on first use, kept by the request
    across the hop between the event loop and the pool), else the `resolution_context()`."""
    explicit = _explicit_context.get()
    if explicit is not None:
        return explicit
    request = current()
    return None if request is None else request_context(request, container)


def request_context(request: typing.Any, container: DIContainer) -> DIContext:
    """`request`'s context, made on first use; closed (its services' close()) once the
    response has been sent."""
    data = request.state._data  # noqa: SLF001 - a key no attribute name can collide with
    context = data.get(_CONTEXT_KEY)
    if context is None:
        context = data[_CONTEXT_KEY] = DIContext(container)
        after_response(request, context.close)
    return context


def dependency_name(default: typing.Any) -> str | None:
    """The service name a `Depends("name")` default stands for (whichever module made it:
    catzilla's Depends keeps it as `.dependency`, 0.2.3's as `.service_name`), else None."""
    for attribute in ("dependency", "service_name"):
        value = getattr(default, attribute, None)
        if isinstance(value, str):
            return value
    return None


def resolve_for_request(name: str, request: typing.Any = None) -> typing.Any:
    """The hook for `Depends("name")` in a handler: service `name` from the serving app's
    container (the default one when the app has none), scoped to `request`."""
    app = getattr(request, "app", None) if request is not None else None
    container = getattr(app, "di_container", None) or get_default_container()
    context = request_context(request, container) if request is not None else None
    return container.resolve(name, context)


set_service_resolver(resolve_for_request)  # Depends("name") in a handler finds services here


# -- the default container (0.2.3's module functions) --------------------------------------

_default: DIContainer | None = None


def get_default_container() -> DIContainer:
    """The container `@service` registers into when not told otherwise (made on first use).
    `Catzilla(enable_di=True)` uses it as its own, so `set_default_container(app.di_container)`
    is harmless and not needed."""
    global _default
    if _default is None:
        _default = DIContainer()
    return _default


def set_default_container(container: DIContainer) -> None:
    global _default
    _default = container


def clear_default_container() -> None:
    global _default
    _default = None


def register_service(name: str, factory: Factory, scope: str = "singleton",
                     dependencies: list[str] | None = None) -> ServiceRegistration:
    return get_default_container().register(name, factory, scope, dependencies)


def resolve_service(name: str, context: DIContext | None = None) -> typing.Any:
    return get_default_container().resolve(name, context)


def create_context() -> DIContext:
    return get_default_container().create_context()


def resolution_context() -> typing.ContextManager[DIContext]:
    return get_default_container().resolution_context()


# -- decorators ---------------------------------------------------------------------------

def service(name: str | None = None, scope: str = "singleton", dependencies: list[str] | None = None,
            container: DIContainer | None = None) -> typing.Callable[[Factory], Factory]:
    """Register the decorated class or function as service `name` (default: its own name)."""
    def register(factory: Factory) -> Factory:
        service_name = name or getattr(factory, "__name__", None)
        if not service_name:
            raise TypeError(f"@service needs a name for {factory!r}")
        (container or get_default_container()).register(service_name, factory, scope, dependencies)
        factory.__catzilla_service__ = service_name  # type: ignore[attr-defined]
        return factory
    return register


def inject(*names: str, container: DIContainer | None = None) -> typing.Callable[[Factory], Factory]:
    """Call the decorated function with the named services as keyword arguments (a service
    named like the parameter it fills); those parameters drop out of its signature, so a
    handler's other parameters still come from the request."""
    def decorate(fn: Factory) -> Factory:
        signature = inspect.signature(fn)
        injected = [n for n in names if n in signature.parameters]
        missing = sorted(set(names) - set(injected))
        if missing:
            raise TypeError(f"@inject: {fn.__qualname__}() has no parameter {', '.join(missing)}")
        visible = signature.replace(parameters=[p for p in signature.parameters.values() if p.name not in injected])

        def services() -> dict[str, typing.Any]:
            chosen = container or _container_of_current_app()
            context = current_context(chosen)
            return {name: chosen.resolve(name, context) for name in injected}

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def call_async(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
                return await fn(*args, **{**services(), **kwargs})
            wrapper: Factory = call_async
        else:
            @functools.wraps(fn)
            def call(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
                return fn(*args, **{**services(), **kwargs})
            wrapper = call
        wrapper.__signature__ = visible  # type: ignore[attr-defined]
        return wrapper
    return decorate


def _container_of_current_app() -> DIContainer:
    from .request import Request

    return getattr(Request.app, "di_container", None) or get_default_container()
