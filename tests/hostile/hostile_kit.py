"""Shared by the hostile-input suite: a small shot on disk, digests of folders, and the CLI contract check.

The contract every case asserts: the expected exit code, exactly one line on stderr that starts
with "error: " (plus any "warning: " lines), names what is at fault, never a traceback, and no
file on disk changed (digests of the folders before and after, symlinks and modes included).
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.media import write_png


def drawing(i: int, width: int = 24, height: int = 16) -> np.ndarray:
    image = np.full((height, width, 3), 235, np.uint8)
    image[4:10, 2 + 2 * i: 6 + 2 * i] = (30, 40, 50)
    return image


def make_footage(folder: Path, count: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_png(folder / f"walk.{i + 1:04d}.png", drawing(i))
    return folder


def make_project(root: Path) -> Path:
    """root/footage/walk.000N.png and root/shot (keys at 1 and 5)."""
    footage = make_footage(root / "footage")
    assert run_cli(["new", str(root / "shot"), "--source", str(footage), "-q"]) == 0
    assert run_cli(["keys", str(root / "shot"), "--frames", "1,5"]) == 0
    return root / "shot"


def digest(*roots: Path) -> dict[str, str]:
    """Every entry under the roots: content hash (files), target (links), kind and mode."""
    found: dict[str, str] = {}
    for root in roots:
        if not os.path.lexists(root):
            found[str(root)] = "absent"
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in sorted(dirnames + filenames):
                path = Path(dirpath) / name
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode):
                    found[str(path)] = "link->" + os.readlink(path)
                elif stat.S_ISREG(info.st_mode):
                    found[str(path)] = f"{stat.S_IMODE(info.st_mode):o}:" + hashlib.sha1(path.read_bytes()).hexdigest()
                else:
                    found[str(path)] = f"{stat.S_IFMT(info.st_mode):o}:{stat.S_IMODE(info.st_mode):o}"
    return found


def cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = run_cli([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, expected: int, *fragments: str) -> None:
    assert code == expected, (code, err)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(errors) == 1 and ("error: " in errors[0]), err
    for fragment in fragments:
        assert fragment in errors[0], err


def refused(capsys, argv: list, expected: int, fragments: tuple[str, ...], *watched: Path) -> str:
    """Run a command that must fail; check the contract and that nothing under `watched` changed."""
    before = digest(*watched)
    code, _out, err = cli(capsys, *argv)
    assert_refused(code, err, expected, *fragments)
    assert digest(*watched) == before
    return err


def python_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONWARNINGS": "default"}


def run_subprocess(*argv, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tooncrafter_studio", *map(str, argv)], capture_output=True,
                          text=True, env=python_env(), timeout=timeout)


def run_bounded(function, limit_s: float = 240.0):
    """Run `function` in a thread and return its result (or raise its exception). One that is still
    running after `limit_s` fails the test: a bound only a hang or an endless retry loop reaches, not
    a timing of the work."""
    import threading

    box: dict = {}

    def target():
        try:
            box["result"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"still running after {limit_s:.0f} s (a hang or an endless retry)"
    if "error" in box:
        raise box["error"]
    return box["result"]
