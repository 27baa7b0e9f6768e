"""The OpenAPI 3.1 document of an app, built once from its routes.

Everything comes from what registration already decided: a route's method and path, its
binding's fields (where each parameter comes from, its type, constraints and description),
its handler's return annotation or `response_model`, and the keywords a route may carry
(status_code, response_class, responses, tags, summary, description, deprecated,
include_in_schema, name). Types become JSON Schema through msgspec
(`msgspec.json.schema_components`), in one call for the whole document, so a model used by
many routes is one component referenced by all of them.
"""
from __future__ import annotations

import inspect
import re
import typing

import msgspec

from ..datastructures import UploadFile
from ..params import Param
from ..responses import Response
from ..routing import _PARAM

__all__ = ["get_openapi", "VALIDATION_ERROR_SCHEMAS"]

REF_TEMPLATE = "#/components/schemas/{name}"
_NoneType = type(None)
_BINARY = {"type": "string", "format": "binary"}

# The 422 body every route with parameters can answer (catzilla.errors; FastAPI's shape).
VALIDATION_ERROR_SCHEMAS: dict[str, typing.Any] = {
    "ValidationError": {
        "title": "ValidationError", "type": "object", "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {"title": "Location", "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"title": "Message", "type": "string"},
            "type": {"title": "Error Type", "type": "string"},
            "input": {"title": "Input"},
            "ctx": {"title": "Context", "type": "object"},
        },
    },
    "HTTPValidationError": {
        "title": "HTTPValidationError", "type": "object",
        "properties": {"detail": {"title": "Detail", "type": "array",
                                  "items": {"$ref": REF_TEMPLATE.format(name="ValidationError")}}},
    },
}
_VALIDATION_RESPONSE = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(name="HTTPValidationError")}}},
}
_UNSET: typing.Any = object()


class _Schemas:
    """Schema slots handed out while operations are built, filled in one msgspec call."""

    def __init__(self) -> None:
        self.slots: list[tuple[dict[str, typing.Any], typing.Any]] = []
        self.components: dict[str, typing.Any] = {}

    def of(self, annotation: typing.Any) -> dict[str, typing.Any]:
        slot: dict[str, typing.Any] = {}
        self.slots.append((slot, annotation))
        return slot

    def fill(self) -> dict[str, typing.Any]:
        known: list[tuple[dict[str, typing.Any], typing.Any]] = []
        for slot, annotation in self.slots:
            if hasattr(annotation, "model_json_schema"):  # a pydantic model
                slot.update(self._pydantic(annotation))
                continue
            try:
                msgspec.json.schema(annotation)
            except (TypeError, ValueError):  # a type JSON Schema cannot describe: anything
                continue
            known.append((slot, annotation))
        if known:
            schemas, components = msgspec.json.schema_components(
                [annotation for _, annotation in known], ref_template=REF_TEMPLATE)
            for (slot, _), schema in zip(known, schemas):
                slot.update(schema)
            self.components.update(components)
        return self.components

    def _pydantic(self, model: typing.Any) -> dict[str, typing.Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        self.components.update(schema.pop("$defs", {}))
        self.components[model.__name__] = schema
        return {"$ref": REF_TEMPLATE.format(name=model.__name__)}


def get_openapi(*, title: str, version: str, routes: typing.Iterable[typing.Any],
                openapi_version: str = "3.1.0", summary: str | None = None,
                description: str | None = None, servers: list[dict[str, typing.Any]] | None = None,
                tags: list[dict[str, typing.Any]] | None = None, terms_of_service: str | None = None,
                contact: dict[str, typing.Any] | None = None,
                license_info: dict[str, typing.Any] | None = None) -> dict[str, typing.Any]:
    """FastAPI's `fastapi.openapi.utils.get_openapi`, for Catzilla routes."""
    info: dict[str, typing.Any] = {"title": title, "version": version}
    if summary:
        info["summary"] = summary
    if description:
        info["description"] = description
    if terms_of_service:
        info["termsOfService"] = terms_of_service
    if contact:
        info["contact"] = contact
    if license_info:
        info["license"] = license_info
    document: dict[str, typing.Any] = {"openapi": openapi_version, "info": info}
    if servers:
        document["servers"] = servers
    schemas = _Schemas()
    paths: dict[str, dict[str, typing.Any]] = {}
    operation_ids: set[str] = set()
    validation = False
    for route in routes:
        if not _in_schema(route):
            continue
        operation, validates = _operation(route, schemas, operation_ids)
        validation = validation or validates
        paths.setdefault(_PARAM.sub(r"{\1}", route.path), {})[route.method.lower()] = operation
    document["paths"] = paths
    components = schemas.fill()
    if validation:
        components.update(VALIDATION_ERROR_SCHEMAS)
    if components:
        document["components"] = {"schemas": dict(sorted(components.items()))}
    if tags:
        document["tags"] = tags
    return document


def _in_schema(route: typing.Any) -> bool:
    # The app's own pages and mounted apps say so on their endpoint; routes on theirs.
    return getattr(route, "include_in_schema", True) and getattr(route.endpoint, "include_in_schema", True)


def _operation(route: typing.Any, schemas: _Schemas, operation_ids: set[str]) -> tuple[dict[str, typing.Any], bool]:
    endpoint = route.endpoint
    operation: dict[str, typing.Any] = {}
    if route.tags:
        operation["tags"] = list(route.tags)
    name = getattr(route, "name", None) or getattr(endpoint, "__name__", "endpoint")
    operation["summary"] = getattr(route, "summary", None) or name.replace("_", " ").title()
    description = getattr(route, "description", None) or inspect.getdoc(endpoint)
    if description:
        operation["description"] = description
    operation_id = re.sub(r"\W", "_", f"{name}{route.path}") + "_" + route.method.lower()
    while operation_id in operation_ids:
        operation_id += "_"
    operation_ids.add(operation_id)
    operation["operationId"] = operation_id
    fields, parameters, seen = [], [], set()
    for binding, call in _bindings(route):  # the dependencies' parameters too, as FastAPI's
        markers = _markers(call)
        for field in getattr(binding, "fields", ()):
            if field.source in ("path", "query", "header", "cookie"):
                if (field.key, field.source) not in seen:
                    seen.add((field.key, field.source))
                    parameters.append(_parameter(field, markers.get(field.name), schemas))
            fields.append(field)
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(fields, schemas)
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = _responses(route, schemas)
    if fields:
        operation["responses"].setdefault("422", _VALIDATION_RESPONSE)
    if getattr(route, "deprecated", False):
        operation["deprecated"] = True
    return operation, bool(fields)


def _bindings(route: typing.Any) -> list[tuple[typing.Any, typing.Any]]:
    """(binding, callable) of each dependency the route runs (with Depends), then its own."""
    plan = getattr(route, "plan", None)
    nodes = [(node.binding, node.call) for node in getattr(plan, "nodes", ()) if node.binding is not None]
    return nodes + [(route.binding, route.endpoint)]


def _markers(endpoint: typing.Any) -> dict[str, Param]:
    """The Query(...)/Path(...) markers of a handler's parameters (their descriptions)."""
    try:
        parameters = inspect.signature(endpoint).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if isinstance(p.default, Param)}


def _description(field: typing.Any, marker: Param | None) -> str | None:
    description = getattr(field, "description", None)
    if description is None and marker is not None:
        description = marker.description
    return description


def _typed(field: typing.Any) -> typing.Any:
    """The field's type with its constraints, as the binding validates it."""
    constraints = getattr(field, "constraints", None)
    annotation = field.annotation
    if not constraints:
        return annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)) \
            and len(args) == 2 and _NoneType in args:
        base = next(a for a in args if a is not _NoneType)
        return typing.Optional[typing.Annotated[base, msgspec.Meta(**constraints)]]
    return typing.Annotated[annotation, msgspec.Meta(**constraints)]


def _parameter(field: typing.Any, marker: Param | None, schemas: _Schemas) -> dict[str, typing.Any]:
    schema = schemas.of(_typed(field))
    parameter: dict[str, typing.Any] = {"name": field.key, "in": field.source,
                                        "required": field.source == "path" or field.required}
    if not field.required:
        default = _json_default(field.default)
        if default is not _UNSET and default is not None:
            schema["default"] = default  # kept when the slot is filled (3.1 allows it beside $ref)
    description = _description(field, marker)
    if description:
        parameter["description"] = description
    parameter["schema"] = schema
    return parameter


def _json_default(value: typing.Any) -> typing.Any:
    try:
        return msgspec.to_builtins(value)
    except TypeError:
        return _UNSET


def _request_body(fields: list[typing.Any], schemas: _Schemas) -> dict[str, typing.Any] | None:
    body = [f for f in fields if f.source == "body"]
    form = [f for f in fields if f.source in ("form", "file")]
    if body:
        if len(body) == 1 and not body[0].embed:
            schema = schemas.of(body[0].annotation)
        else:
            schema = _object(body, schemas)
        media_type = "application/json"
        required = any(f.required for f in body)
    elif form:
        schema = _object(form, schemas)
        media_type = "multipart/form-data" if any(f.source == "file" for f in form) \
            else "application/x-www-form-urlencoded"
        required = any(f.required for f in form)
    else:
        return None
    return {"required": required, "content": {media_type: {"schema": schema}}}


def _object(fields: list[typing.Any], schemas: _Schemas) -> dict[str, typing.Any]:
    properties = {}
    for field in fields:
        if field.source == "file":
            properties[field.key] = {"type": "array", "items": _BINARY} if field.many else dict(_BINARY)
        else:
            properties[field.key] = schemas.of(field.annotation)
    schema: dict[str, typing.Any] = {"type": "object", "properties": properties}
    required = [f.key for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema


def _responses(route: typing.Any, schemas: _Schemas) -> dict[str, typing.Any]:
    status = str(getattr(route, "status_code", None) or 200)
    response: dict[str, typing.Any] = {"description": "Successful Response"}
    # None, or not there: the return annotation (a route's response_model=None cannot be
    # told from one not given, and documenting the annotation is the safer side).
    model = getattr(route, "response_model", None) or _return_annotation(route.endpoint)
    response_class = getattr(route, "response_class", None)
    media_type = getattr(response_class, "media_type", None)
    if status not in ("204", "304") and model is not None and not _is_response(model):
        if media_type is None:
            media_type = {str: "text/plain", bytes: "application/octet-stream"}.get(model, "application/json")
        response["content"] = {media_type: {"schema": schemas.of(model)}}
    elif status not in ("204", "304") and media_type is not None:
        response["content"] = {media_type: {}}
    responses = {status: response}
    for code, extra in (getattr(route, "responses", None) or {}).items():
        extra = dict(extra)
        entry = responses.setdefault(str(code), {})
        extra_model = extra.pop("model", None)
        if extra_model is not None:
            entry["content"] = {"application/json": {"schema": schemas.of(extra_model)}}
        entry.update(extra)
        entry.setdefault("description", _phrase(int(code)) if str(code).isdigit() else "Response")
    return responses


def _return_annotation(endpoint: typing.Any) -> typing.Any:
    """The handler's return annotation, or None when it says nothing a schema can use."""
    try:
        hints = typing.get_type_hints(endpoint, include_extras=True)
    except Exception:
        return None
    annotation = hints.get("return")
    if annotation in (None, _NoneType, typing.Any):
        return None
    return annotation


def _is_response(annotation: typing.Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_is_response(arg) for arg in typing.get_args(annotation))
    return inspect.isclass(annotation) and (issubclass(annotation, Response) or annotation is UploadFile)


def _phrase(code: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Response"

