"""Finding the application a server is told to serve: `package.module:attribute`."""
from __future__ import annotations

import importlib
import os
import sys
import typing

__all__ = ["load_app", "AppLoadError"]


class AppLoadError(Exception):
    """The target names no importable module or no attribute of it (exit status 4)."""


def load_app(target: str) -> typing.Any:
    """`package.module:attribute` -> the object; the current directory is importable."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise AppLoadError(f"app must look like 'module:attribute', got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppLoadError(f"could not import module {module_name!r}: {exc}") from exc
        raise
    obj: typing.Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return obj
