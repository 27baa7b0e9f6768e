"""Validation models: `class User(BaseModel): name: str = Field(min_length=2)`.

Pydantic's (and Catzilla 0.2.3's) way of writing a model, compiled once, when the class is
created, into a msgspec Struct: each `Field(...)` becomes a `msgspec.Meta` constraint on its
annotation, so decoding a request body, converting query values and calling `User(...)`
all validate in msgspec's C code. A BaseModel subclass *is* a `msgspec.Struct`, which is
how `catzilla.binding` knows it for a request body without a second validation path.

`__post_init__` runs after the fields are checked; a `ValidationError` (or any ValueError
or TypeError) raised there fails validation like a bad field.
"""
from __future__ import annotations

import copy
import sys
import typing

import msgspec

__all__ = [
    "BaseModel", "Field", "FieldInfo", "ValidationError", "get_performance_stats",
    "reset_performance_stats", "get_validation_stats",
]

_StructMeta = type(msgspec.Struct)
_NoneType = type(None)
_MUTABLE = (list, dict, set, bytearray)


# What 0.2.3's stats functions report. Validation runs inside msgspec's decoder, where there
# is no counter to read: we report the models compiled and say that the rest is not measured.
_stats = {"models_compiled": 0}


class ValidationError(msgspec.ValidationError):
    """Data that does not satisfy a model. A ValueError, so that raising it in
    `__post_init__` fails validation, and a `msgspec.ValidationError`, so that one `except`
    catches both what msgspec finds and what the model's own rules find."""


class FieldInfo:
    """What `Field(...)` returns: a default and constraints, read once by the model class."""

    __slots__ = ("default", "default_factory", "alias", "title", "description", "examples",
                 "constraints", "extra")

    def __init__(self, default: typing.Any, default_factory: typing.Callable[[], typing.Any] | None,
                 alias: str | None, title: str | None, description: str | None,
                 examples: list[typing.Any] | None, constraints: dict[str, typing.Any],
                 extra: dict[str, typing.Any]) -> None:
        self.default = default
        self.default_factory = default_factory
        self.alias = alias
        self.title = title
        self.description = description
        self.examples = examples
        self.constraints = constraints
        self.extra = extra

    @property
    def required(self) -> bool:
        return self.default is ... and self.default_factory is None

    def __repr__(self) -> str:
        return f"Field(default={self.default!r}, {self.constraints!r})"


def Field(  # noqa: N802 - pydantic's name
    default: typing.Any = ..., *, default_factory: typing.Callable[[], typing.Any] | None = None,
    alias: str | None = None, title: str | None = None, description: str | None = None,
    examples: list[typing.Any] | None = None,
    gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None,
    multiple_of: float | None = None, min_length: int | None = None, max_length: int | None = None,
    pattern: str | None = None, regex: str | None = None,
    min_items: int | None = None, max_items: int | None = None, **extra: typing.Any,
) -> typing.Any:
    """A model field: its default (`...`: required) and constraints. `regex` is 0.2.3's and
    pydantic v1's name for `pattern`; `min_items`/`max_items` theirs for a list's
    `min_length`/`max_length`."""
    constraints = {
        "gt": gt, "ge": ge, "lt": lt, "le": le, "multiple_of": multiple_of,
        "min_length": min_length if min_length is not None else min_items,
        "max_length": max_length if max_length is not None else max_items,
        "pattern": pattern if pattern is not None else regex,
    }
    constraints = {name: value for name, value in constraints.items() if value is not None}
    return FieldInfo(default, default_factory, alias, title, description, examples, constraints, extra)


def _constrain(annotation: typing.Any, constraints: dict[str, typing.Any], description: str | None,
               title: str | None) -> typing.Any:
    """`annotation` with a msgspec.Meta; inside Optional[...] the constraint applies to the
    value, since None has no length or bound."""
    meta_args = dict(constraints)
    if description is not None:
        meta_args["description"] = description
    if title is not None:
        meta_args["title"] = title
    if not meta_args:
        return annotation
    if typing.get_origin(annotation) is typing.Union or type(annotation).__name__ == "UnionType":
        args = typing.get_args(annotation)
        if _NoneType in args and len(args) == 2:
            (inner,) = [arg for arg in args if arg is not _NoneType]
            return typing.Optional[typing.Annotated[inner, msgspec.Meta(**meta_args)]]
    return typing.Annotated[annotation, msgspec.Meta(**meta_args)]


def _resolve(annotation: typing.Any, namespace: dict[str, typing.Any]) -> typing.Any:
    """A string annotation (`from __future__ import annotations`) evaluated in the module the
    class is defined in, so that a constraint can wrap it; left as it is when it names
    something not defined yet (msgspec resolves it later, without constraints)."""
    if not isinstance(annotation, str):
        return annotation
    module = sys.modules.get(namespace.get("__module__", ""))
    scope = dict(vars(typing))
    if module is not None:
        scope.update(vars(module))
    try:
        return eval(annotation, scope, dict(namespace))  # noqa: S307 - the class's own source
    except Exception:
        return annotation


class ModelMeta(_StructMeta):
    """Compiles a model class: `Field(...)` defaults into msgspec annotations and defaults,
    keyword-only fields (a required field may follow one with a default, as in pydantic)."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, typing.Any],
                **options: typing.Any) -> typing.Any:
        annotations = dict(namespace.get("__annotations__", {}))
        infos: dict[str, FieldInfo] = {}
        for field_name, annotation in annotations.items():
            if typing.get_origin(annotation) is typing.ClassVar or field_name.startswith("_"):
                continue
            value = namespace.get(field_name, ...)
            if isinstance(value, FieldInfo):
                info = value
                annotations[field_name] = _constrain(_resolve(annotation, namespace), info.constraints,
                                                     info.description, info.title)
                infos[field_name] = info
                namespace[field_name] = _default(info)
                if namespace[field_name] is ...:
                    del namespace[field_name]
            elif isinstance(value, _MUTABLE) and value:
                namespace[field_name] = msgspec.field(default_factory=lambda v=value: copy.deepcopy(v))
        namespace["__annotations__"] = annotations
        options.setdefault("kw_only", True)
        cls = super().__new__(mcls, name, bases, namespace, **options)
        inherited: dict[str, FieldInfo] = {}
        for base in reversed(cls.__mro__[1:]):
            inherited.update(getattr(base, "__field_infos__", {}))
        inherited.update(infos)
        cls.__field_infos__ = cls.model_fields = inherited  # pydantic's name: the Field()s
        _stats["models_compiled"] += 1
        return cls

    def __call__(cls, *args: typing.Any, **values: typing.Any) -> typing.Any:
        """`User(name="x")` validates as pydantic does (types, constraints, __post_init__);
        msgspec's own constructor checks nothing."""
        if args:
            raise TypeError(f"{cls.__name__}() takes keyword arguments only")
        try:
            return msgspec.convert(values, cls, strict=False, from_attributes=True)
        except msgspec.ValidationError as exc:
            raise ValidationError(str(exc)) from None


def _default(info: FieldInfo) -> typing.Any:
    if info.default_factory is not None:
        return msgspec.field(default_factory=info.default_factory, name=info.alias)
    default = info.default
    if isinstance(default, _MUTABLE) and default:
        return msgspec.field(default_factory=lambda v=default: copy.deepcopy(v), name=info.alias)
    if info.alias is not None:
        return msgspec.field(default=msgspec.NODEFAULT if default is ... else default, name=info.alias)
    return default


class BaseModel(msgspec.Struct, metaclass=ModelMeta):
    """A validated record (pydantic's BaseModel, written the same way)."""

    @classmethod
    def model_validate(cls, data: typing.Any) -> typing.Any:
        """`data` (a mapping or an object with the fields as attributes) as a validated
        instance, or ValidationError."""
        try:
            return msgspec.convert(data, cls, strict=False, from_attributes=True)
        except msgspec.ValidationError as exc:
            raise ValidationError(str(exc)) from None

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> typing.Any:
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.ValidationError as exc:
            raise ValidationError(str(exc)) from None

    validate = parse_obj = model_validate  # 0.2.3's and pydantic v1's names
    parse_raw = model_validate_json

    def model_dump(self, *, exclude_none: bool = False) -> dict[str, typing.Any]:
        """The fields as plain Python data (nested models as dicts)."""
        data = msgspec.to_builtins(self)
        if exclude_none:
            data = {key: value for key, value in data.items() if value is not None}
        return data

    dict = to_dict = model_dump

    def model_dump_json(self) -> str:
        return msgspec.json.encode(self).decode()

    json = model_dump_json

    def model_copy(self, *, update: typing.Mapping[str, typing.Any] | None = None) -> typing.Any:
        return msgspec.structs.replace(self, **dict(update or {}))

    copy = model_copy


def get_performance_stats() -> dict[str, typing.Any]:
    """How many model classes were compiled; per-validation timings are not measured (they
    happen inside msgspec's decoder, without a hook)."""
    return {"models_compiled": _stats["models_compiled"], "engine": f"msgspec {msgspec.__version__}",
            "validations_measured": False}


get_validation_stats = get_performance_stats


def reset_performance_stats() -> None:
    """Nothing per-validation is counted, so there is nothing to reset (kept for 0.2.3's apps)."""
