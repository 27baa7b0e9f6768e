"""Binding request data to handler parameters.

`Binding` reads a handler's signature once, at registration, and prepares everything the
request path needs: which value comes from where, and one msgspec model that converts and
validates all scalar parameters in a single call. Only when that call fails do we go field
by field, to report every error (FastAPI's shape) instead of the first.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing

import msgspec

from ._native import PlainBinder, PlainInvoke, PositionalCall, parse_query
from .datastructures import UploadFile
from .errors import DefinitionError, RequestValidationError, describe_validation_error, json_invalid, missing
from .forms import FileSizeError, FormError, MimeTypeError
from .params import Depends, Param, Source
from .request import Request
from .validatable import PydanticBody, is_pydantic_model, unvalidatable, uses_pydantic

__all__ = ["Binding", "BadRequest", "Field"]

_NoneType = type(None)
_SEQUENCES = (list, tuple, set, frozenset, typing.Sequence, typing.List)
# The words pydantic (so FastAPI) reads as booleans, any case; msgspec's lax mode knows
# only true/false/1/0.
_BOOL_WORDS = {word: "true" for word in ("1", "t", "true", "y", "yes", "on")}
_BOOL_WORDS.update({word: "false" for word in ("0", "f", "false", "n", "no", "off")})
_convert = msgspec.convert
_asdict = msgspec.structs.asdict
_UNIONS = (typing.Union, getattr(types, "UnionType", typing.Union))

# FastAPI reports form fields and uploads under "body", where they travel.
_LOC_PREFIX = {"form": "body", "file": "body"}


class BadRequest(Exception):
    """The body can't be parsed as the form its Content-Type announces (a 400)."""


@dataclasses.dataclass
class Field:
    """One bound parameter, as decided at registration (also what OpenAPI is built from)."""

    name: str  # the handler's parameter name
    source: Source
    key: str  # the name on the wire: query key, header name, form field, path segment
    annotation: typing.Any
    default: typing.Any  # `...` when required
    many: bool = False  # a sequence type: every value of a repeated key
    boolean: bool = False
    embed: bool = False  # a lone body parameter still nested under its name
    constraints: dict[str, typing.Any] = dataclasses.field(default_factory=dict)
    description: str | None = None
    marker: Param | None = None  # the Query(...)/Body(...) it was declared with, if any

    @property
    def required(self) -> bool:
        return self.default is ...

    @property
    def loc(self) -> list[str]:
        return [_LOC_PREFIX.get(self.source, self.source), self.key]


def _strip_optional(annotation: typing.Any) -> tuple[typing.Any, bool]:
    if typing.get_origin(annotation) in _UNIONS:
        args = [a for a in typing.get_args(annotation) if a is not _NoneType]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _is_sequence(annotation: typing.Any) -> bool:
    base, _ = _strip_optional(annotation)
    return base in (list, tuple, set) or typing.get_origin(base) in _SEQUENCES


def _is_body_type(annotation: typing.Any) -> bool:
    """dict, list, List[...], a msgspec.Struct, a dataclass, a TypedDict or a pydantic model:
    a JSON document, not a scalar."""
    base, _ = _strip_optional(annotation)
    origin = typing.get_origin(base) or base
    if origin in (dict, list, typing.Dict, typing.List) or base in (dict, list):
        return True
    return inspect.isclass(base) and (
        issubclass(base, msgspec.Struct) or dataclasses.is_dataclass(base)
        or typing.is_typeddict(base) or is_pydantic_model(base)
    )


def _constrained(annotation: typing.Any, param: Param | None) -> typing.Any:
    constraints = param.constraints() if param is not None else {}
    if not constraints:
        return annotation
    base, optional = _strip_optional(annotation)
    meta = typing.Annotated[base, msgspec.Meta(**constraints)]
    return typing.Optional[meta] if optional else meta


def _unpack(annotation: typing.Any) -> tuple[typing.Any, Param | Depends | None]:
    """`Annotated[T, Query(...)]` -> (T, the marker); other metadata (msgspec.Meta) stays."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return annotation, None
    base, *metadata = typing.get_args(annotation)
    markers = [m for m in metadata if isinstance(m, (Param, Depends))]
    if not markers:
        return annotation, None
    if len(markers) > 1:
        raise ValueError(f"more than one marker in Annotated: {markers}")
    others = [m for m in metadata if not isinstance(m, (Param, Depends))]
    return (typing.Annotated[(base, *others)] if others else base), markers[0]


def _signature_owner(endpoint: typing.Any) -> typing.Any:
    """Where a callable's annotations are: a class's __init__, an instance's __call__."""
    if inspect.isclass(endpoint):
        return endpoint.__init__
    if not (inspect.isroutine(endpoint) or isinstance(endpoint, functools.partial)) \
            and callable(endpoint):
        return type(endpoint).__call__
    return endpoint


def _type_hints(owner: typing.Any, described: str) -> dict[str, typing.Any]:
    """The annotations, resolved; one that cannot be (a name defined later, or local to a
    function, under `from __future__ import annotations`) is an error naming it."""
    try:
        return typing.get_type_hints(owner, include_extras=True)
    except Exception:
        pass
    hints = {}
    namespace = getattr(inspect.unwrap(owner), "__globals__", {})
    for name, annotation in getattr(owner, "__annotations__", {}).items():
        try:
            hints.update(typing.get_type_hints(types.SimpleNamespace(__annotations__={name: annotation}),
                                               globalns=namespace, include_extras=True))
        except Exception as exc:
            raise DefinitionError(f"the annotation {annotation!r} of parameter {name!r} of {described} "
                                  f"cannot be resolved ({type(exc).__name__}: {exc})") from None
    return hints


def _describe(endpoint: typing.Any) -> str:
    """How registration errors name a handler: `handler 'get_user' (app.py:12)`."""
    name = getattr(endpoint, "__qualname__", None) or getattr(endpoint, "__name__", None) or repr(endpoint)
    code = getattr(inspect.unwrap(endpoint) if callable(endpoint) else endpoint, "__code__", None)
    where = f" ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})" if code is not None else ""
    return f"{name!r}{where}"


class Binding:
    """The prepared calling convention of one handler (or dependency).

    `fields` are the parameters bound from the request, `dependencies` the (name, Depends,
    annotation) of those that come from a dependency (see catzilla.dependencies), decided
    here once. A handler's first positional parameter receives the request (Catzilla's
    convention); for a dependency (`request_first=False`) only one annotated `Request` does,
    as in FastAPI."""

    def __init__(self, endpoint: typing.Callable[..., typing.Any], path_names: typing.Iterable[str],
                 *, request_first: bool = True) -> None:
        self.owner = _describe(endpoint)
        try:
            signature = inspect.signature(endpoint)
        except (TypeError, ValueError) as exc:
            raise DefinitionError(f"cannot read the parameters of {self.owner}: {exc}") from None
        hints = _type_hints(_signature_owner(endpoint), self.owner)
        path_names = set(path_names)
        self.request_names: list[str] = []
        self.pass_request = False
        self.dependencies: list[tuple[str, Depends, typing.Any]] = []
        fields: list[Field] = []
        model_types: dict[str, typing.Any] = {}
        params = [p for p in signature.parameters.values()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        for index, parameter in enumerate(params):
            annotation = hints.get(parameter.name, parameter.annotation)
            if annotation is inspect.Parameter.empty:
                annotation = typing.Any
            try:
                annotation, marker = _unpack(annotation)
            except ValueError as exc:
                raise DefinitionError(f"parameter {parameter.name!r} of {self.owner}: {exc}") from None
            default = parameter.default
            if isinstance(default, (Param, Depends)):
                if marker is not None:
                    raise DefinitionError(
                        f"parameter {parameter.name!r} of {self.owner} has a marker both in Annotated and "
                        f"as its default: declare it once")
                marker, default = default, (default.default if isinstance(default, Param) else ...)
            elif isinstance(marker, Param) and marker.default is not ...:
                raise DefinitionError(
                    f"parameter {parameter.name!r} of {self.owner}: a default inside Annotated[..., "
                    f"{type(marker).__name__}] is not allowed; write `= default` instead (as FastAPI)")
            if isinstance(marker, Depends):
                self.dependencies.append((parameter.name, marker, annotation))
                continue
            # Request, or a subclass of it (a WebSocket handler's first parameter).
            is_request = inspect.isclass(annotation) and issubclass(annotation, Request)
            if is_request or (
                request_first and index == 0 and marker is None and parameter.name not in path_names
                and parameter.kind != parameter.KEYWORD_ONLY
                and annotation is typing.Any and default is inspect.Parameter.empty
            ):
                if request_first and index == 0 and parameter.kind != parameter.KEYWORD_ONLY:
                    self.pass_request = True
                else:
                    self.request_names.append(parameter.name)
                continue
            field = self._field(parameter.name, annotation, default, marker, path_names)
            fields.append(field)
            if field.source not in ("body", "file") and not _is_query_model(field):
                model_types[field.name] = _constrained(annotation, marker)
        self.fields = fields
        self.positional_request = self.pass_request
        self._path = [f for f in fields if f.source == "path"]
        # `params: SearchParams = Query()`: a model (a msgspec Struct, so catzilla.validation's
        # BaseModel too) filled from the whole query string.
        self._query_models = [f for f in fields if _is_query_model(f)]
        self._query = [f for f in fields if f.source == "query" and f not in self._query_models]
        self._header = [f for f in fields if f.source == "header"]
        self._cookie = [f for f in fields if f.source == "cookie"]
        self._form = [f for f in fields if f.source == "form"]
        self._file = [f for f in fields if f.source == "file"]
        self._types = model_types
        try:
            self._model = self._build_model(endpoint, fields, model_types)
            self._direct = None if self._query_models else self._build_direct_model(endpoint, fields, model_types)
        except (TypeError, ValueError) as exc:  # a constraint msgspec refuses for that type
            raise DefinitionError(f"the parameters of {self.owner} cannot be validated: {exc}") from None
        # `bind(request)`: keyword arguments for the handler, or RequestValidationError /
        # BadRequest. Which way is decided here, once.
        self.bind: typing.Callable[[Request], dict[str, typing.Any]] = (
            self._bind_direct if self._direct is not None else self._bind_each)
        self._body = [f for f in fields if f.source == "body"]
        if self._direct is not None and not self._body:
            self.bind = _plain_binder(fields, self.request_names, path_names, self._bind_direct) or self.bind
        self._pydantic = any(uses_pydantic(f.annotation) for f in self._body)
        try:
            self._body_decoder = self._build_body_decoder(endpoint, self._body)
        except Exception as exc:
            raise DefinitionError(f"the body of {self.owner} cannot be validated: {exc}") from None
        self.trivial = not fields and not self.request_names
        # `call(endpoint, request, kwargs)`: endpoint(request, **kwargs), the arguments
        # passed positionally when they are exactly the function's own parameters.
        names = _positional_names(endpoint) if self.pass_request else None
        self.call: typing.Callable[[typing.Any, Request, dict[str, typing.Any] | None], typing.Any] = (
            _call_with_keywords if names is None else PositionalCall(endpoint, names))
        # `invoke(endpoint, request)`: endpoint called with what bind(request) gives, in one
        # C call (ext/binding.c's PlainInvoke) for a plain binder and a plain function; None
        # when there is none (then bind, then call, as _invoke_reference does).
        self.invoke: typing.Callable[[typing.Any, Request], typing.Any] | None = _plain_invoke(endpoint, self)

    def _field(self, name: str, annotation: typing.Any, default: typing.Any, marker: Param | None,
               path_names: set[str]) -> Field:
        if marker is not None:
            source = marker.source
            key = marker.alias or name
            if source == "header" and not marker.alias and marker.convert_underscores:
                key = name.replace("_", "-")
        elif name in path_names:
            source, key, default = "path", name, ...
        elif annotation is UploadFile:
            source, key = "file", name
        elif _is_body_type(annotation):
            source, key = "body", name
        else:
            source, key = "query", name
        if source == "path" and name not in path_names and key not in path_names:
            raise DefinitionError(f"parameter {name!r} of {self.owner} is declared Path() but the route's "
                                  f"path has no {{{key}}}")
        if default is inspect.Parameter.empty:
            default = ...
        query_model = source == "query" and _is_struct(_strip_optional(annotation)[0])  # see _query_model
        if source != "file" and not (source == "body" and uses_pydantic(annotation)) and not query_model:
            why = unvalidatable(_constrained(annotation, marker), scalar=source != "body")
            if why is not None:
                raise DefinitionError(
                    f"cannot bind parameter {name!r} of {self.owner} "
                    f"(annotation {annotation!r}, from the {source}): {why}")
        base, _ = _strip_optional(annotation)
        return Field(name, source, key, annotation, default,
                     many=source != "body" and _is_sequence(annotation), boolean=base is bool,
                     embed=marker is not None and marker.embed,
                     constraints=marker.constraints() if marker is not None else {},
                     description=marker.description if marker is not None else None, marker=marker)

    @staticmethod
    def _build_model(endpoint: typing.Any, fields: list[Field], types: dict[str, typing.Any]) -> typing.Any:
        if not types:
            return None
        spec = []
        for field in fields:
            if field.name in types:
                if field.required:
                    spec.append((field.name, types[field.name]))
                else:
                    spec.append((field.name, types[field.name], field.default))
        name = f"Params_{getattr(endpoint, '__name__', 'handler')}"
        return msgspec.defstruct(name, spec, kw_only=True)

    @staticmethod
    def _build_direct_model(endpoint: typing.Any, fields: list[Field], types: dict[str, typing.Any]) -> typing.Any:
        """For the common handler whose parameters are path segments and single query
        values: a model that reads the wire names itself, so one convert() call on the
        parsed query string binds everything. None when a parameter needs more (headers,
        repeated keys, boolean words, forms)."""
        scalar = [f for f in fields if f.name in types]
        if not scalar or any(f.source not in ("path", "query") or f.many or f.boolean for f in scalar):
            return None
        spec = [(f.name, types[f.name]) if f.required else (f.name, types[f.name], f.default) for f in scalar]
        rename = {f.name: f.key for f in scalar if f.key != f.name}
        name = f"Direct_{getattr(endpoint, '__name__', 'handler')}"
        return msgspec.defstruct(name, spec, kw_only=True, rename=rename or None)

    def _build_body_decoder(self, endpoint: typing.Any, body: list[Field]) -> typing.Any:
        if not body:
            return None
        if self._pydantic:
            return PydanticBody(body)
        if len(body) == 1 and not body[0].embed:
            return msgspec.json.Decoder(body[0].annotation)
        spec = [(f.name, f.annotation) if f.required else (f.name, f.annotation, f.default) for f in body]
        name = f"Body_{getattr(endpoint, '__name__', 'handler')}"
        return msgspec.json.Decoder(msgspec.defstruct(name, spec, kw_only=True))

    # -- the per-request path -------------------------------------------------------------

    def _bind_direct(self, request: Request) -> dict[str, typing.Any]:
        """`bind` for handlers that _build_direct_model covers; anything it cannot bind
        goes down the long path, which also finds every error to report."""
        query = request.query_string
        raw = dict(parse_query(query)) if query else {}
        path_params = request.path_params
        if path_params:
            raw.update(path_params)  # a path segment beats a query key of the same name
        try:
            values = _asdict(_convert(raw, self._direct, strict=False))
        except msgspec.ValidationError:
            return self._bind_each(request)
        if self._body_decoder is not None:
            try:
                values.update(self._decode_body(request.body))
            except RequestValidationError:
                return self._bind_each(request)
        for field in self._path:
            path_params[field.key] = values[field.name]
        for name in self.request_names:
            values[name] = request
        return values

    def _bind_each(self, request: Request) -> dict[str, typing.Any]:
        raw: dict[str, typing.Any] = {}
        for field in self._path:
            raw[field.name] = request.path_params[field.key]
        if self._query:
            self._collect(raw, self._query, request.query_params)
        if self._header:
            self._collect(raw, self._header, request.headers)
        if self._cookie:
            self._collect(raw, self._cookie, request.cookies)
        if self._form or self._file:
            try:
                form = request.form()
            except FormError as exc:
                raise BadRequest(str(exc)) from None
            self._collect(raw, self._form, form)
        # Every group is checked even after one failed, so that one 422 lists every error.
        errors: list[dict[str, typing.Any]] = []
        values: dict[str, typing.Any] = {}
        if self._model is not None:
            try:
                values = self._validate(raw)
            except RequestValidationError as exc:
                errors.extend(exc.errors)
        if self._body_decoder is not None:
            try:
                values.update(self._decode_body(request.body))
            except RequestValidationError as exc:
                errors.extend(exc.errors)
        for field in self._query_models:
            try:
                values[field.name] = _query_model(field, request.query_params)
            except RequestValidationError as exc:
                errors.extend(exc.errors)
        if self._file:
            try:
                values.update(self._files(request.form().files))
            except RequestValidationError as exc:
                errors.extend(exc.errors)
        if errors:
            raise RequestValidationError(errors)
        for field in self._path:
            request.path_params[field.key] = values[field.name]
        for name in self.request_names:
            values[name] = request
        return values

    @staticmethod
    def _collect(raw: dict[str, typing.Any], fields: list[Field], source: typing.Any) -> None:
        for field in fields:
            if field.many:
                found = source.getlist(field.key) if hasattr(source, "getlist") else (
                    [source[field.key]] if field.key in source else [])
                if found:
                    raw[field.name] = found
                continue
            value = source.get(field.key)
            if value is not None:
                if field.boolean and isinstance(value, str):
                    value = _BOOL_WORDS.get(value.lower(), value)
                raw[field.name] = value

    def _validate(self, raw: dict[str, typing.Any]) -> dict[str, typing.Any]:
        try:
            return msgspec.structs.asdict(msgspec.convert(raw, self._model, strict=False))
        except msgspec.ValidationError:
            raise RequestValidationError(self._every_error(raw)) from None

    def _every_error(self, raw: dict[str, typing.Any]) -> list[dict[str, typing.Any]]:
        errors = []
        for field in self.fields:
            if field.name not in self._types:
                continue
            if field.name not in raw:
                if field.required:
                    errors.append(missing(field.loc))
                continue
            try:
                msgspec.convert(raw[field.name], self._types[field.name], strict=False)
            except msgspec.ValidationError as exc:
                errors.append(describe_validation_error(str(exc), field.loc, raw[field.name], field.constraints))
        return errors

    def _decode_body(self, body: bytes) -> dict[str, typing.Any]:
        fields = self._body
        whole = len(fields) == 1 and not fields[0].embed
        if not body:
            required = [f for f in fields if f.required]
            if required:
                raise RequestValidationError([missing(["body"] if whole else ["body", f.key]) for f in required])
            return {f.name: f.default for f in fields}
        if self._pydantic:
            return self._body_decoder.decode(body)
        try:
            value = self._body_decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise RequestValidationError(self._every_body_error(body, exc, whole)) from None
        except msgspec.DecodeError as exc:
            raise json_invalid(exc) from None
        if whole:
            return {fields[0].name: value}
        return {f.name: getattr(value, f.name) for f in fields}

    def _every_body_error(self, body: bytes, first: msgspec.ValidationError, whole: bool) -> list[dict[str, typing.Any]]:
        """The decoder stops at the first bad field; FastAPI lists them all (cold path)."""
        fallback = [describe_validation_error(str(first), ["body"], _input_at(body, str(first)))]
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return fallback
        if whole:
            errors = _object_errors(document, self._body[0].annotation, ["body"])
        else:
            errors = _object_errors(document, None, ["body"], self._body)
        return errors or fallback

    def _files(self, files: dict[str, list[UploadFile]]) -> dict[str, typing.Any]:
        values: dict[str, typing.Any] = {}
        errors = []
        for field in self._file:
            uploads = files.get(field.key)
            if uploads:
                if field.marker is not None and field.marker.source == "file":
                    _check_uploads(field, uploads)
                values[field.name] = uploads if field.many else uploads[0]
            elif field.required:
                errors.append(missing(field.loc))
            else:
                values[field.name] = field.default
        if errors:
            raise RequestValidationError(errors)
        return values


class UploadTooLarge(FileSizeError, BadRequest):
    """Over a `File(max_size=)`: a FileSizeError (413) that binding raises as a refusal."""


class UploadTypeRefused(MimeTypeError, BadRequest):
    """Not one of a `File(allowed_types=)`: a MimeTypeError (415), raised as a refusal."""


def _check_uploads(field: Field, uploads: list[UploadFile]) -> None:
    """`File(max_files=, max_size=, allowed_types=)`: 422 for too many files (pydantic's
    `too_long`), 413 for a file too large, 415 for a media type the parameter does not take."""
    marker = field.marker
    if marker.max_files is not None and len(uploads) > marker.max_files:
        raise RequestValidationError([{
            "type": "too_long", "loc": field.loc, "input": None, "ctx": {"max_length": marker.max_files},
            "msg": f"List should have at most {marker.max_files} items after validation, not {len(uploads)}"}])
    for upload in uploads:
        if marker.max_size is not None and (upload.size or 0) > marker.max_size:
            raise UploadTooLarge(f"{field.key}: {upload.filename!r} is {upload.size} bytes, "
                                f"over this upload's limit of {marker.max_size}")
        if marker.allowed_types is not None and (upload.content_type or "").split(";")[0].strip().lower() \
                not in marker.allowed_types:
            raise UploadTypeRefused(f"{field.key}: {upload.filename!r} is {upload.content_type}, not one of "
                                f"{', '.join(sorted(marker.allowed_types))}")


def _positional_names(endpoint: typing.Any) -> tuple[str, ...] | None:
    """The parameters after the request of a plain function, read from its code (not from
    a signature a decorator may have copied onto a wrapper that takes keywords only)."""
    code = getattr(endpoint, "__code__", None)
    if not inspect.isfunction(endpoint) or code is None or code.co_posonlyargcount > 1 \
            or not 1 <= code.co_argcount <= 17:
        return None
    return tuple(code.co_varnames[1:code.co_argcount])


def _invoke_reference(binding: Binding, endpoint: typing.Any, request: Request) -> typing.Any:
    """What `invoke(endpoint, request)` does, the long way: bind, then call."""
    kwargs = binding.bind(request)
    return binding.call(endpoint, request, kwargs) if binding.pass_request else endpoint(**kwargs)


def _plain_invoke(endpoint: typing.Any, binding: Binding) -> typing.Any:
    """PlainInvoke for a plain binder and a plain function whose positional parameters are
    exactly the request (when it takes it first), the bound fields and the parameters that
    receive the request, read from its code (as _positional_names); None otherwise."""
    code = getattr(endpoint, "__code__", None)
    if not isinstance(binding.bind, PlainBinder) or binding.dependencies or not inspect.isfunction(endpoint) \
            or code is None or code.co_kwonlyargcount or code.co_argcount > 17:
        return None
    names = code.co_varnames[:code.co_argcount]
    if binding.pass_request:
        if not names:
            return None
        names = names[1:]
    fields = {field.name: i for i, field in enumerate(binding.fields)}
    slots = [fields.get(name, -1 if name in binding.request_names else None) for name in names]
    if None in slots or sorted(slot for slot in slots if slot >= 0) != list(range(len(fields))) \
            or sorted(name for name in names if name not in fields) != sorted(binding.request_names):
        return None
    return PlainInvoke(binding.bind, endpoint, ((-1,) if binding.pass_request else ()) + tuple(slots),
                       functools.partial(_invoke_reference, binding))


def _call_with_keywords(endpoint: typing.Any, request: Request, kwargs: dict[str, typing.Any] | None) -> typing.Any:
    return endpoint(request) if kwargs is None else endpoint(request, **kwargs)


# What _plain_binder reads without msgspec: int (a constraint among these, with an int
# bound) and str (none).
_PLAIN_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_PLAIN_DEFAULTS = (type(None), int, str, float, bool)


def _plain_binder(fields: list[Field], request_names: list[str], path_names: typing.Iterable[str],
                  general: typing.Callable[[Request], dict[str, typing.Any]], native: bool = True) -> typing.Any:
    """For the commonest handlers, whose parameters are path segments and single query
    values typed `int` or `str` (`Optional` with a default too): `bind` compiled for them,
    which takes what is plainly valid (a canonical decimal integer within the bounds)
    straight and hands anything else to `general` (msgspec: the same values, the same
    errors). None when some parameter needs more.

    It is ext/binding.c's PlainBinder, one C call that builds no dict of the query string;
    this function's Python, compiled here, is its reference (`native=False`, what the tests
    compare it with) and stands in for it where it cannot go (a key beyond ASCII, a bound
    beyond 64 bits)."""
    lines = ["def bind(request):"]
    namespace: dict[str, typing.Any] = {"general": general, "parse_query": parse_query, "EMPTY": {}}
    path_names = set(path_names)
    results, rewrites, specs = [], [], []
    if any(f.source == "query" for f in fields):
        lines += ["    query = request.query_string",
                  "    query = dict(parse_query(query)) if query else EMPTY"]
    if any(f.source == "path" for f in fields):
        lines.append("    path_params = request.path_params")
    for i, field in enumerate(fields):
        base, optional = _strip_optional(field.annotation)
        bounds = field.constraints
        if (base not in (int, str) or field.many or (field.source == "query" and field.key in path_names)
                or (base is str and bounds) or any(name not in _PLAIN_BOUNDS or type(bound) is not int
                                                   for name, bound in bounds.items())
                or (not field.required and type(field.default) not in _PLAIN_DEFAULTS)
                or (optional and field.required)):
            return None
        value = f"v{i}"
        namespace[f"K{i}"], namespace[f"D{i}"] = field.key, field.default
        specs.append((field.name, field.source == "path", field.key, base is int, field.required, field.default,
                      tuple(bounds.items())))
        if field.source == "path":
            lines.append(f"    {value} = path_params[K{i}]")
            indent = "    "
        elif field.required:
            lines += [f"    {value} = query.get(K{i})", f"    if {value} is None: return general(request)"]
            indent = "    "
        elif base is str:
            lines += [f"    {value} = query.get(K{i})", f"    if {value} is None: {value} = D{i}"]
        else:
            lines += [f"    {value} = query.get(K{i})", f"    if {value} is None: {value} = D{i}", "    else:"]
            indent = "        "
        if base is int:
            # msgspec's own reading of a decimal string ("007", "1.0", "1e3" and the
            # out-of-range go to it): digits, no leading zero, fewer than 19 of them.
            # A path value may be an int already (bound once in the worker, then again in
            # the CPU lane): msgspec's to take.
            text = f"type({value}) is str and " if field.source == "path" else ""
            lines += [f"{indent}if not ({text}{value}.isascii() and {value}.isdigit() and len({value}) < 19 "
                      f"and ({value}[0] != '0' or len({value}) == 1)): return general(request)",
                      f"{indent}{value} = int({value})"]
            lines += [f"{indent}if not {value} {_PLAIN_BOUNDS[name]} {bound!r}: return general(request)"
                      for name, bound in bounds.items()]
            if field.source == "path":
                rewrites.append(f"    path_params[K{i}] = {value}")
        results.append(f"{field.name!r}: {value}")
    results += [f"{name!r}: request" for name in request_names]
    lines += rewrites + ["    return {" + ", ".join(results) + "}"]
    exec("\n".join(lines), namespace)  # noqa: S102 -- built from names and numbers only
    if native:
        try:
            return PlainBinder(tuple(specs), tuple(request_names), general)
        except ValueError:
            pass
    return namespace["bind"]


def _is_struct(annotation: typing.Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, msgspec.Struct)


def _is_query_model(field: Field) -> bool:
    return field.source == "query" and _is_struct(_strip_optional(field.annotation)[0])


def _query_model(field: Field, query: typing.Any) -> typing.Any:
    """The query string as `field`'s model: repeated keys for its sequence fields, the last
    value for the others; values converted as query values are (lax: "3" is 3)."""
    model, _ = _strip_optional(field.annotation)
    raw: dict[str, typing.Any] = {}
    for info in msgspec.structs.fields(model):
        if info.encode_name in query:
            if _is_sequence(info.type):
                raw[info.encode_name] = query.getlist(info.encode_name)
            else:
                value = query.get(info.encode_name)
                raw[info.encode_name] = _BOOL_WORDS.get(value.lower(), value) if _strip_optional(info.type)[0] is bool else value
    try:
        return msgspec.convert(raw, model, strict=False)
    except msgspec.ValidationError as exc:
        raise RequestValidationError(
            _object_errors(raw, model, ["query"], strict=False) or
            [describe_validation_error(str(exc), ["query"], raw)]) from None


def _object_errors(document: typing.Any, annotation: typing.Any, loc: list[typing.Any],
                   fields: list[Field] | None = None, strict: bool = True) -> list[dict[str, typing.Any]]:
    """Validate an object field by field: (name on the wire, type, required) from a Struct,
    a dataclass, or the embedded body parameters of a handler."""
    if fields is not None:
        spec = [(f.key, f.annotation, f.required) for f in fields]
    elif inspect.isclass(annotation) and issubclass(annotation, msgspec.Struct):
        spec = [(f.encode_name, f.type, f.required) for f in msgspec.structs.fields(annotation)]
    elif inspect.isclass(annotation) and dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        spec = [(f.name, hints.get(f.name, typing.Any),
                 f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
                for f in dataclasses.fields(annotation)]
    else:
        return []
    if not isinstance(document, dict):
        return []
    errors = []
    for name, field_type, required in spec:
        if name not in document:
            if required:
                errors.append(missing(loc + [name]))
            continue
        try:
            msgspec.convert(document[name], field_type, strict=strict)
        except msgspec.ValidationError as exc:
            errors.append(describe_validation_error(str(exc), loc + [name], document[name]))
    return errors


def _input_at(body: bytes, message: str) -> typing.Any:
    """The offending value inside a JSON body, for the error's `input` (cold path)."""
    from .errors import error_location

    try:
        value = msgspec.json.decode(body)
        for part in error_location(message):
            value = value[part]
        return value
    except Exception:
        return None
