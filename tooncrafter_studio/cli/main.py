"""The headless command line. Never imports Qt.

Each command group lives in its own module with a `register(subparsers)` function that adds
its sub-commands and sets `handler=` (a function taking the parsed args, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from .. import __version__
from ..core.errors import Cancelled, StudioError
from ..core.logging import configure_logging

# Modules with a `register(subparsers)` function; missing ones are skipped so that a partly
# installed tree still gives a working CLI.
COMMAND_MODULES = (
    "tooncrafter_studio.cli.project_cmds",
    "tooncrafter_studio.cli.generate_cmds",
    "tooncrafter_studio.cli.models_cmds",
    "tooncrafter_studio.cli.doctor_cmds",
    "tooncrafter_studio.cli.interpolate_cmd",
    "tooncrafter_studio.cli.export_cmd",
    "tooncrafter_studio.cli.review_cmd",
)

# Messages from the shared layers name a setting the way the studio does; on the command line the
# same setting is a flag, added here so that each front end speaks its own language.
FLAG_HINTS = (
    ("allow overwriting", "allow overwriting (--overwrite)"),
    ("set the device to CPU", "set the device to CPU (--device cpu; generate: --param device=cpu)"),
    ("choose the model file", "choose the model file (--model PATH; generate: --param model=PATH)"),
)


def with_flag_hints(message: str) -> str:
    for phrase, hinted in FLAG_HINTS:
        message = message.replace(phrase, hinted)
    return message


EXIT_OK = 0
EXIT_FAILED = 1  # an unexpected error (a bug)
EXIT_USAGE = 2  # bad input, a clear message on stderr
EXIT_CANCELLED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage errors: one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tooncrafter-studio", description="ToonCrafter Studio, headless commands. "
                     "Run without a command to open the app.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def run_cli(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(logging.DEBUG if args.debug else logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args) or EXIT_OK)
    except Cancelled:
        print("Cancelled.", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_CANCELLED
    except StudioError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {with_flag_hints(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug: say so in one line unless debugging
        if args.debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return EXIT_FAILED
