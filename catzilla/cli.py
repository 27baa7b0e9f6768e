"""`catzilla run module:app`: the production entry point."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing

from .config import Config, setting_env

__all__ = ["main"]

logger = logging.getLogger("catzilla")


def _argument_type(field: dataclasses.Field[typing.Any], first: bool = False) -> typing.Callable[[str], typing.Any]:
    """The flag's parser, with the setting's own message when a value does not parse."""
    def parse(raw: str) -> typing.Any:
        try:
            value = field.metadata["parse"](raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value[0] if first else value
    parse.__name__ = field.name
    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catzilla", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve an application",
                              description="Every option also reads an environment variable, shown in brackets.")
    run.add_argument("app", help="the application, as module:attribute (e.g. myapp:app)")
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        help = f"{field.metadata['help']} [{setting_env(field)}]"
        if field.metadata["flag"]:
            run.add_argument(flag, dest=field.name, default=None, help=help,
                             action=argparse.BooleanOptionalAction)
            continue
        if field.metadata["repeatable"]:
            # One value per flag on the command line; the list form is for the environment.
            run.add_argument(flag, dest=field.name, default=None, action="append", help=help,
                             metavar=field.name.upper(), type=_argument_type(field, first=True))
        else:
            run.add_argument(flag, dest=field.name, default=None, metavar=field.name.upper(),
                             type=_argument_type(field), help=help)
    stats = commands.add_parser("stats", help="live table of a running server's statistics")
    stats.add_argument("--pid", type=int, help="the master's pid (default: the newest server)")
    stats.add_argument("--file", help="the stats block file (/dev/shm/catzilla-PID.stats)")
    stats.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    stats.add_argument("--once", action="store_true", help="print one table and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "stats":
        from .stats_command import run_top

        return run_top(args.pid, args.file, args.interval, args.once)
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)}
    try:
        config = Config.from_env(**settings)
    except ValueError as exc:
        print(f"catzilla: {exc}", file=sys.stderr)
        return 2
    from .serve import serve  # not at the top: `catzilla stats` needs none of the server

    return serve(config, target=args.app)
