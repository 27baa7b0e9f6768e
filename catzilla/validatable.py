"""What can be validated, decided at registration: the types msgspec converts a query,
path, header, cookie or form value to, the types it cannot validate at all, and pydantic
models (optional: only when the app uses them, pydantic being then imported)."""
from __future__ import annotations

import sys
import typing

import msgspec
import msgspec.inspect

from .errors import RequestValidationError, json_invalid, missing, pydantic_errors

__all__ = ["PydanticBody", "is_pydantic_model", "unvalidatable", "uses_pydantic"]

# What a query, path, header, cookie or form value may be converted to (msgspec's names).
_SCALAR_INFO = (
    msgspec.inspect.AnyType, msgspec.inspect.NoneType, msgspec.inspect.BoolType, msgspec.inspect.IntType,
    msgspec.inspect.FloatType, msgspec.inspect.StrType, msgspec.inspect.BytesType,
    msgspec.inspect.DecimalType, msgspec.inspect.UUIDType, msgspec.inspect.DateTimeType,
    msgspec.inspect.DateType, msgspec.inspect.TimeType, msgspec.inspect.TimeDeltaType,
    msgspec.inspect.EnumType, msgspec.inspect.LiteralType,
)


def is_pydantic_model(annotation: typing.Any) -> bool:
    pydantic = sys.modules.get("pydantic")  # a pydantic model means pydantic is imported
    return pydantic is not None and isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


def uses_pydantic(annotation: typing.Any) -> bool:
    """Whether `annotation` is, or holds (list[Model], Optional[Model]), a pydantic model."""
    if is_pydantic_model(annotation):
        return True
    return any(uses_pydantic(arg) for arg in typing.get_args(annotation) if not isinstance(arg, (str, int)))


def unvalidatable(annotation: typing.Any, scalar: bool) -> str | None:
    """Why msgspec cannot validate `annotation` (for a query/path/header/cookie/form value:
    `scalar`, one value or a sequence of them), or None when it can."""
    try:
        info = msgspec.inspect.type_info(annotation)
    except Exception as exc:  # an annotation that is no type at all
        return str(exc)
    if scalar:
        while isinstance(info, msgspec.inspect.UnionType) and len(info.types) == 2 \
                and any(isinstance(t, msgspec.inspect.NoneType) for t in info.types):
            info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
        if isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType,
                             msgspec.inspect.VarTupleType)):
            info = info.item_type
        if isinstance(info, msgspec.inspect.UnionType):
            bad = [t for t in info.types if not isinstance(t, _SCALAR_INFO)]
            return f"{bad[0]!r} is not a single value" if bad else None
        if isinstance(info, msgspec.inspect.CustomType):
            return f"msgspec cannot validate {info.cls!r}"
        return None if isinstance(info, _SCALAR_INFO) else "it is not a single value (a body type needs Body())"
    custom = _custom_types(info, set())
    return f"msgspec cannot validate {custom[0]!r}" if custom else None


def _custom_types(info: typing.Any, seen: set[int]) -> list[typing.Any]:
    """The classes msgspec only knows as opaque objects (CustomType) anywhere inside `info`."""
    if id(info) in seen:
        return []
    seen.add(id(info))
    if isinstance(info, msgspec.inspect.CustomType):
        return [info.cls]
    found = []
    for value in (getattr(info, name) for name in getattr(info, "__struct_fields__", ())):
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, msgspec.inspect.Field):
                item = item.type
            if isinstance(item, msgspec.inspect.Type):
                found.extend(_custom_types(item, seen))
    return found


class PydanticBody:
    """A body that is, or holds, a pydantic model: msgspec parses the JSON, pydantic
    validates it (every error, in FastAPI's shape, which is pydantic's own)."""

    def __init__(self, fields: list[typing.Any]) -> None:  # binding.Field
        from pydantic import TypeAdapter, ValidationError

        self._error = ValidationError
        self.fields = fields
        self.whole = len(fields) == 1 and not fields[0].embed
        self.adapters = [(f, TypeAdapter(f.annotation)) for f in fields]

    def decode(self, body: bytes) -> dict[str, typing.Any]:
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise json_invalid(exc) from None
        if self.whole:
            field, adapter = self.adapters[0]
            try:
                return {field.name: adapter.validate_python(document)}
            except self._error as exc:
                raise RequestValidationError(pydantic_errors(exc.errors(include_url=False), ["body"])) from None
        if not isinstance(document, dict):
            raise RequestValidationError([{"type": "model_attributes_type", "loc": ["body"],
                                           "msg": "Input should be a valid dictionary or object to extract fields from",
                                           "input": document}])
        values, errors = {}, []
        for field, adapter in self.adapters:
            if field.key not in document:
                if field.required:
                    errors.append(missing(["body", field.key]))
                else:
                    values[field.name] = field.default
                continue
            try:
                values[field.name] = adapter.validate_python(document[field.key])
            except self._error as exc:
                errors.extend(pydantic_errors(exc.errors(include_url=False), ["body", field.key]))
        if errors:
            raise RequestValidationError(errors)
        return values
