"""The headless command line. Never imports Qt.

Each command group lives in its own module with a `register(subparsers)` function that adds
its sub-commands and sets `handler=` (a function taking the parsed args, returning an exit code).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import io
import logging
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..core.errors import Cancelled, StudioError
from ..core.fsio import describe_os_error
from ..core.logging import configure_logging
from ..core.paths import user_log_dir
from ..project.ownership import release_all

# Modules with a `register(subparsers)` function; missing ones are skipped so that a partly
# installed tree still gives a working CLI.
COMMAND_MODULES = (
    "tooncrafter_studio.cli.project_cmds",
    "tooncrafter_studio.cli.generate_cmds",
    "tooncrafter_studio.cli.models_cmds",
    "tooncrafter_studio.cli.doctor_cmds",
    "tooncrafter_studio.cli.interpolate_cmd",
    "tooncrafter_studio.cli.export_cmd",
    "tooncrafter_studio.cli.farm_cmds",
    "tooncrafter_studio.cli.engine_cmds",
    "tooncrafter_studio.cli.lineart_cmd",
    "tooncrafter_studio.cli.sketch_cmds",
    "tooncrafter_studio.cli.review_cmd",
    "tooncrafter_studio.cli.timing_cmds",
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
EXIT_FAILED = 1  # an internal error (a bug): the traceback goes to the log file
EXIT_USAGE = 2  # the command line or an input file is wrong: one line on stderr names it
EXIT_RESOURCE = 3  # the machine lacks something: disk space, permission, memory, a GPU, or the project is busy
EXIT_CANCELLED = 130

# (code, meaning, whether a farm should retry the task: the same command may work later or elsewhere)
EXIT_CODES = (
    (EXIT_OK, "done", False),
    (EXIT_FAILED, "internal error (a bug): the traceback is written to the log file named on stderr", False),
    (EXIT_USAGE, "usage or bad input: a wrong option or argument, a missing, damaged or too large file", False),
    (EXIT_RESOURCE, "resource: disk full, no permission to write, out of memory (RAM or GPU), no usable GPU "
                    "or model, the project open or its write lock held elsewhere, a cluster lost or unreachable, a download "
                    "server that cannot be reached or stalls",
     True),
    (EXIT_CANCELLED, "cancelled (Ctrl+C, or the farm stopped the task)", False),
)

EPILOG = ("exit codes (a farm retries only those marked retry):\n"
          + "\n".join(f"  {code:<4} {'retry ' if retry else ''}{text}" for code, text, retry in EXIT_CODES)
          + "\nEvery error is one line on stderr (error: ...) naming the file or option at fault; "
            "--debug adds the traceback.")

# errno values of an OSError that escaped a command, by cause (anything else is a resource problem)
_INPUT_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG,
                           errno.EINVAL, errno.EEXIST, errno.ENOTEMPTY})


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage errors: one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tooncrafter-studio", description="ToonCrafter Studio, headless commands. "
                     "Run without a command to open the app.", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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


def _printable_streams() -> None:
    """File names from other systems (bytes that are not UTF-8) are printed escaped, never a crash."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            stream.reconfigure(errors="backslashreplace")


def run_cli(argv: list[str]) -> int:
    _printable_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(logging.DEBUG if args.debug else logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args) or EXIT_OK)
    except BaseException as exc:
        return _report(exc, args, argv)
    finally:
        release_all()  # claims on projects end with the command, however it ends


def _report(exc: BaseException, args: argparse.Namespace, argv: list[str]) -> int:
    """The exit code for an exception being handled, after one line on stderr (see EXIT_CODES)."""
    if isinstance(exc, (SystemExit, GeneratorExit)):
        raise exc
    if isinstance(exc, (Cancelled, KeyboardInterrupt)):
        print("Cancelled." if isinstance(exc, Cancelled) else "Interrupted.", file=sys.stderr)
        return EXIT_CANCELLED
    if args.debug:
        traceback.print_exc()
    if isinstance(exc, StudioError):
        print(f"error: {one_line(with_flag_hints(str(exc)))}", file=sys.stderr)
        return EXIT_RESOURCE if exc.resource else EXIT_USAGE
    if isinstance(exc, MemoryError):
        print("error: not enough memory to finish; close other programs, or give smaller inputs.", file=sys.stderr)
        return EXIT_RESOURCE
    if isinstance(exc, OSError):  # a file problem no layer put into words: still one line naming the file
        name = exc.filename if exc.filename is not None else "a file"
        print(f"error: {one_line(describe_os_error(name, exc, 'use'))}", file=sys.stderr)
        return EXIT_USAGE if exc.errno in _INPUT_ERRNOS else EXIT_RESOURCE
    # a bug: one line here, the traceback in the log file
    where = write_crash_log(argv)
    detail = f"the traceback is in {where}" if where else "run with --debug for the traceback"
    print(f"error: internal error ({type(exc).__name__}: {one_line(str(exc))[:200]}); this is a bug, {detail}.",
          file=sys.stderr)
    return EXIT_FAILED


def one_line(text: str) -> str:
    return " ".join(text.split())


def write_crash_log(argv: list[str]) -> Path | None:
    """Append the current exception's traceback to the CLI log file; its path, or None if unwritable."""
    path = user_log_dir() / "cli.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(f"--- {datetime.now(UTC).isoformat(timespec='seconds')} tooncrafter-studio "
                         f"{' '.join(argv)}\n{traceback.format_exc()}\n")
    except OSError:
        return None
    return path
