"""`tooncrafter-studio` with no sub-command opens the app; sub-commands are headless."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("--project") or args[0] in ("--gui",):
        from .qt.app import run_app  # Qt is imported only for the GUI

        return run_app([a for a in args if a != "--gui"])
    from .cli.main import run_cli

    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
