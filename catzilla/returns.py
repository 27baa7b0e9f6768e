"""What a handler returns, made a response as its route says: `status_code=`,
`response_class=` and `response_model=` (or the handler's return annotation), decided at
registration.

A model (a msgspec Struct, a dataclass, a TypedDict, a pydantic model, or a list or dict of
them) shapes the JSON: the result is converted to it (from a dict or from an object's
attributes, as FastAPI's `from_attributes`) and only the model's fields are sent. A result
that does not fit the model is the server's bug: logged, and answered 500. A handler that
returns a Response has it sent as it is.
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import typing

import msgspec

from .validatable import unvalidatable, uses_pydantic
from .errors import DefinitionError
from .responses import Response, to_response

__all__ = ["Returns", "ResponseValidationError", "DEFAULT"]

logger = logging.getLogger("catzilla")


class _Default:
    """`response_model` not given (None given means: do not shape, whatever the annotation)."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: typing.Any = _Default()


class ResponseValidationError(ValueError):
    """The handler's result does not fit its response model (answered 500, as in FastAPI)."""


def _holds_model(annotation: typing.Any) -> bool:
    """Whether a return annotation names something to shape (not dict, str, a Response...)."""
    if inspect.isclass(annotation):
        if issubclass(annotation, Response):
            return False
        return issubclass(annotation, msgspec.Struct) or dataclasses.is_dataclass(annotation) \
            or typing.is_typeddict(annotation) or uses_pydantic(annotation)
    return any(_holds_model(arg) for arg in typing.get_args(annotation))


def _returns_response(annotation: typing.Any) -> bool:
    if inspect.isclass(annotation):
        return issubclass(annotation, Response)
    return any(_returns_response(arg) for arg in typing.get_args(annotation))


class Returns:
    """`respond(result) -> Response` for one route."""

    def __init__(self, endpoint: typing.Callable[..., typing.Any], owner: str, *,
                 status_code: int | None = None, response_model: typing.Any = DEFAULT,
                 response_class: type[Response] | None = None) -> None:
        if response_model is DEFAULT:
            try:
                annotation = typing.get_type_hints(endpoint).get("return")
            except Exception:  # unresolvable forward references: nothing to shape by
                annotation = None
            response_model = annotation if annotation is not None and _holds_model(annotation) \
                and not _returns_response(annotation) else None
        if status_code is not None and not (isinstance(status_code, int) and 200 <= status_code <= 999):
            raise DefinitionError(f"status_code of {owner} must be a final status (200..999), got {status_code!r}")
        if response_class is not None and not (inspect.isclass(response_class) and issubclass(response_class, Response)):
            raise DefinitionError(f"response_class of {owner} must be a Response class, got {response_class!r}")
        self.model = response_model
        self.status_code = status_code
        self.response_class = response_class
        self.needed = response_model is not None or status_code is not None or response_class is not None
        self._adapter: typing.Any = None
        if response_model is not None:
            if uses_pydantic(response_model):
                from pydantic import TypeAdapter

                self._adapter = TypeAdapter(response_model)
            else:
                why = unvalidatable(response_model, scalar=False)
                if why is not None:
                    raise DefinitionError(f"response_model of {owner} ({response_model!r}) cannot be used: {why}")
        self._owner = owner

    def respond(self, result: typing.Any) -> Response:
        if isinstance(result, Response):
            return result
        status = self.status_code or 200
        if self.model is not None:
            body = self._shape(result)
            if self.response_class is not None:
                return self.response_class(msgspec.json.decode(body), status_code=status)
            return Response(body, status, media_type="application/json")
        if self.response_class is not None:
            return self.response_class(result, status_code=status)
        if result is None and status in (204, 304):
            return Response(None, status)
        response = to_response(result)
        response.status_code = status
        return response

    def _shape(self, result: typing.Any) -> bytes:
        try:
            if self._adapter is not None:
                return self._adapter.dump_json(self._adapter.validate_python(result, from_attributes=True))
            return msgspec.json.encode(msgspec.convert(result, self.model, from_attributes=True))
        except Exception as exc:
            raise ResponseValidationError(
                f"the result of {self._owner} does not fit its response model {self.model!r}: {exc}") from exc
