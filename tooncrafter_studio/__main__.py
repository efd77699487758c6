"""`tooncrafter-studio` with no sub-command opens the app; `tooncrafter-studio PROJECT` opens the app on
that project (a folder, or its project.json: what a file manager or a file association passes);
sub-commands are headless and never need Qt."""

from __future__ import annotations

import sys

GUI_MISSING = ('The desktop app needs Qt, which is not installed here: pip install "tooncrafter-studio[gui]". '
               "The headless commands work without it: tooncrafter-studio --help")


def _is_command(name: str) -> bool:
    from .cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001
    return name in sub.choices


def gui_args(args: list[str]) -> list[str] | None:
    """The app's arguments when these open the app, else None (a headless command)."""
    if not args or args[0].startswith("--project") or args[0] == "--gui":
        return [a for a in args if a != "--gui"]
    from .project.project import project_folder_of

    folder = project_folder_of(args[0]) if not args[0].startswith("-") else None
    if folder is not None and not _is_command(args[0]):
        return ["--project", folder, *args[1:]]
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    app_args = gui_args(args)
    if app_args is not None:
        try:
            import PySide6.QtWidgets  # noqa: F401  (the gui extra)
        except ImportError:
            sys.stderr.write(f"error: {GUI_MISSING}\n")  # the command line speaks on stderr, like cli/
            return 3  # a resource missing on this machine (cli.main.EXIT_RESOURCE)
        from .qt.app import run_app  # Qt is imported only for the GUI

        return run_app(app_args)
    from .cli.main import run_cli

    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
