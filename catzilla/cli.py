"""`catzilla run module:app`: the production entry point."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import sys
import typing

from .config import Config, parse_value, setting_env

__all__ = ["main", "load_app", "configure_logging", "AppLoadError"]

# gunicorn's exit status for "the application could not be loaded"; operators know it.
EXIT_APP_LOAD_ERROR = 4

logger = logging.getLogger("catzilla")


class AppLoadError(Exception):
    pass


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
        stream=sys.stderr,
    )


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catzilla", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve an application",
                              description="Every option also reads an environment variable, shown in brackets.")
    run.add_argument("app", help="the application, as module:attribute (e.g. myapp:app)")
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        run.add_argument(flag, dest=field.name, default=None, metavar=field.name.upper(),
                         type=lambda raw, f=field: parse_value(f, raw),
                         help=f"{field.metadata['help']} [{setting_env(field)}]")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)}
    try:
        config = Config.from_env(**settings)
    except ValueError as exc:
        print(f"catzilla: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    try:
        app = load_app(args.app)
    except AppLoadError as exc:
        logger.error("%s", exc)
        return EXIT_APP_LOAD_ERROR
    except Exception:
        logger.exception("could not load the application %r", args.app)
        return EXIT_APP_LOAD_ERROR
    from .worker.server import Worker

    if config.workers > 1:
        logger.warning("--workers %d: the prefork master is not built yet; serving with one worker",
                       config.workers)
    return Worker(app, config).run()
