"""Errors a handler or the framework raises, and their FastAPI-shaped JSON bodies."""
from __future__ import annotations

import re
import typing

__all__ = ["HTTPException", "HeaderError", "RequestValidationError", "DefinitionError",
           "describe_validation_error", "pydantic_errors"]


class HTTPException(Exception):
    """Raise in a handler to answer `status_code` with `{"detail": detail}`."""

    def __init__(
        self, status_code: int, detail: typing.Any = None,
        headers: typing.Mapping[str, str] | None = None,
    ) -> None:
        from http import HTTPStatus

        if detail is None:
            try:
                detail = HTTPStatus(status_code).phrase
            except ValueError:
                detail = "Error"
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers) if headers else None


class HeaderError(ValueError):
    """A request head the server refuses; `status` is the answer (400, 413 or 431)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class ErrorList(list):  # type: ignore[type-arg]
    """The errors of a RequestValidationError: a list, and callable as FastAPI's
    `exc.errors()` is, so exception handlers written for either work."""

    def __call__(self) -> list[dict[str, typing.Any]]:
        return self


class RequestValidationError(Exception):
    """Parameters that failed validation: answered with 422 and every error found
    (`exc.errors`, or `exc.errors()` as in FastAPI)."""

    def __init__(self, errors: list[dict[str, typing.Any]], *, body: typing.Any = None) -> None:
        super().__init__(errors)
        self.errors = ErrorList(errors)
        self.body = body


class DefinitionError(TypeError):
    """A route or dependency declared in a way that cannot be served: raised when it is
    registered (never at the first request), naming the handler and the parameter."""


def json_invalid(exc: Exception) -> RequestValidationError:
    return RequestValidationError([{
        "type": "json_invalid", "loc": ["body"], "msg": "JSON decode error",
        "input": {}, "ctx": {"error": str(exc)},
    }])


def missing(loc: list[typing.Any]) -> dict[str, typing.Any]:
    return {"type": "missing", "loc": loc, "msg": "Field required", "input": None}


# msgspec reports one error as text; these turn it into pydantic v2's error types, which
# FastAPI clients already switch on. Order matters: constraint messages before type ones.
_CONSTRAINTS: list[tuple[re.Pattern[str], str, str, typing.Callable[[str], typing.Any]]] = [
    (re.compile(r"Expected `\w+` >= (\S+)"), "greater_than_equal",
     "Input should be greater than or equal to {}", lambda v: _number(v)),
    (re.compile(r"Expected `\w+` > (\S+)"), "greater_than",
     "Input should be greater than {}", lambda v: _number(v)),
    (re.compile(r"Expected `\w+` <= (\S+)"), "less_than_equal",
     "Input should be less than or equal to {}", lambda v: _number(v)),
    (re.compile(r"Expected `\w+` < (\S+)"), "less_than",
     "Input should be less than {}", lambda v: _number(v)),
    (re.compile(r"Expected `\w+` that's a multiple of (\S+)"), "multiple_of",
     "Input should be a multiple of {}", lambda v: _number(v)),
    (re.compile(r"Expected `str` of length >= (\d+)"), "string_too_short",
     "String should have at least {} characters", int),
    (re.compile(r"Expected `str` of length <= (\d+)"), "string_too_long",
     "String should have at most {} characters", int),
    (re.compile(r"Expected `str` matching regex '(.*)'"), "string_pattern_mismatch",
     "String should match pattern '{}'", str),
]
_CTX_KEYS = {
    "greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le",
    "less_than": "lt", "string_too_short": "min_length", "string_too_long": "max_length",
    "string_pattern_mismatch": "pattern", "multiple_of": "multiple_of",
}
_TYPES = {
    "int": ("int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
    "float": ("float_parsing", "Input should be a valid number, unable to parse string as a number"),
    "bool": ("bool_parsing", "Input should be a valid boolean, unable to interpret input"),
    "str": ("string_type", "Input should be a valid string"),
    "array": ("list_type", "Input should be a valid list"),
    "object": ("dict_type", "Input should be a valid dictionary"),
}
_EXPECTED = re.compile(r"Expected `([^`]+)`")
_AT = re.compile(r" - at `\$(.*)`$")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_PATH_PART = re.compile(r"\.(\w+)|\[(\d+)\]|\[\.\.\.\]")


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def error_location(message: str) -> list[typing.Any]:
    """`... - at `$.items[0].id`` -> ["items", 0, "id"] (the path inside the value)."""
    match = _AT.search(message)
    if not match:
        return []
    loc: list[typing.Any] = []
    for name, index in _PATH_PART.findall(match.group(1)):
        loc.append(name if name else int(index) if index else "...")
    return loc


# msgspec states integer bounds inclusively (`gt=0` becomes `>= 1`); the user's own
# constraint says which one to report.
_EXCLUSIVE = {"greater_than_equal": ("gt", "greater_than"), "less_than_equal": ("lt", "less_than")}


def _value_at(value: typing.Any, inner: list[typing.Any]) -> typing.Any:
    for part in inner:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return value
    return value


def describe_validation_error(
    message: str, loc: list[typing.Any], value: typing.Any,
    constraints: typing.Mapping[str, typing.Any] | None = None,
) -> dict[str, typing.Any]:
    """One msgspec error message as one FastAPI/pydantic error entry at `loc`; `constraints`
    are the parameter's own (`Query(gt=0)`), reported as written."""
    message = str(message)
    inner = error_location(message)
    if inner and isinstance(value, (list, dict)):
        value = _value_at(value, inner)
    missing_field = _MISSING.match(message)
    if missing_field:
        return missing(loc + inner + [missing_field.group(1)])
    for pattern, kind, text, parse in _CONSTRAINTS:
        found = pattern.match(message)
        if found:
            limit = parse(found.group(1))
            if constraints:
                exclusive = _EXCLUSIVE.get(kind)
                if exclusive and _CTX_KEYS[kind] not in constraints and exclusive[0] in constraints:
                    kind, text = exclusive[1], ("Input should be greater than {}" if exclusive[0] == "gt"
                                                else "Input should be less than {}")
                if constraints.get(_CTX_KEYS[kind]) is not None:
                    limit = constraints[_CTX_KEYS[kind]]
            return {"type": kind, "loc": loc + inner, "msg": text.format(limit),
                    "input": value, "ctx": {_CTX_KEYS[kind]: limit}}
    expected = _EXPECTED.match(message)
    if expected:
        name = expected.group(1).split(" | ")[0]
        kind, text = _TYPES.get(name, (f"{name}_type", f"Input should be a valid {name}"))
        return {"type": kind, "loc": loc + inner, "msg": text, "input": value}
    return {"type": "value_error", "loc": loc + inner, "msg": _AT.sub("", message), "input": value}


def pydantic_errors(errors: list[typing.Any], loc: list[typing.Any]) -> list[dict[str, typing.Any]]:
    """pydantic's `ValidationError.errors()` in FastAPI's shape, under `loc` (["body"]):
    pydantic v2 already speaks it, except for the url and ctx values JSON cannot hold."""
    shaped = []
    for error in errors:
        entry = {"type": error["type"], "loc": loc + list(error["loc"]), "msg": error["msg"],
                 "input": error.get("input")}
        ctx = error.get("ctx")
        if ctx:
            entry["ctx"] = {key: value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
                            for key, value in ctx.items()}
        shaped.append(entry)
    return shaped
