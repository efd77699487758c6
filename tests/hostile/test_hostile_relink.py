"""`relink --source DIR` over folders it does not own: unreadable folders, `/` itself, trees too deep or
too wide. Unreadable folders are skipped with a warning; the walk is bounded (depth, folders,
entries, time) and says which bound stopped it; the one error line (if nothing is found) is exit 2."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from hostile_kit import cli, digest, make_project

from tooncrafter_studio.project import relink


@pytest.fixture
def moved(tmp_path):
    """A project whose footage folder is gone from where project.json says (moved elsewhere)."""
    shot = make_project(tmp_path / "studio")
    footage = tmp_path / "studio" / "footage"
    return shot, footage


def _move(footage: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(footage), str(target))
    return target


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith("warning: ")]


@pytest.fixture
def unreadable(monkeypatch):
    """Make folders unreadable: chmod 000 where that stops us (not root); as root, which reads
    everything, the same PermissionError comes from the OS calls for paths inside them."""
    blocked: list[str] = []

    def block(folder: Path) -> None:
        blocked.append(str(folder))
        folder.chmod(0)

    if os.geteuid() == 0 if hasattr(os, "geteuid") else False:
        def refuse(real):
            def call(path, *args, **kwargs):
                text = os.fspath(path) if not isinstance(path, int) else ""
                if any(text == b or text.startswith(b + os.sep) for b in blocked):
                    raise PermissionError(13, "Permission denied", text)
                return real(path, *args, **kwargs)
            return call

        monkeypatch.setattr(os, "stat", refuse(os.stat))
        monkeypatch.setattr(os, "scandir", refuse(os.scandir))
    yield block
    for folder in blocked:
        Path(folder).chmod(0o755)


def test_an_unreadable_folder_is_skipped_with_a_warning_and_the_search_goes_on(moved, tmp_path, capsys, unreadable):
    shot, footage = moved
    search = tmp_path / "disk"
    locked = search / "a_locked"  # searched first (level order, names sorted by the OS or not: both are walked)
    (locked / "inner").mkdir(parents=True)
    # the locked folder has the drawings' names: looking into it is what used to fail
    for name in ("walk.0001.png", "walk.0002.png"):
        (locked / name).write_bytes(b"x")
    _move(footage, search / "z_found" / "footage")
    unreadable(locked)
    code, out, err = cli(capsys, "relink", shot, "--source", search)
    assert code == 0, err
    assert "Relinked 5 drawings" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert any("could not be read" in w and "a_locked" in w for w in warnings), err
    assert not _errors(err)


def test_relink_from_the_root_of_the_disk_is_bounded_and_never_stops_at_a_folder_it_cannot_read(moved, tmp_path,
                                                                                                 capsys):
    shot, footage = moved
    _move(footage, tmp_path / "deep" / "a" / "b" / "c" / "d" / "e" / "footage")  # far below /
    before = digest(shot)
    began = time.monotonic()
    code, _out, err = cli(capsys, "relink", shot, "--source", "/")
    elapsed = time.monotonic() - began
    errors = _errors(err)
    if code == 0:  # another copy of the same drawings was found under / (same names and content)
        assert not errors
        return
    assert code == 2 and len(errors) == 1 and "None of the 5 missing drawings" in errors[0], err
    assert "Traceback" not in err and digest(shot) == before
    assert any("were not searched" in line or "stopped after" in line for line in err.splitlines()), err
    assert elapsed < relink.SEARCH_SECONDS + 60, elapsed  # the walk's own bound plus start-up on a busy machine


@pytest.mark.parametrize("bound, value, words", [
    ("SEARCH_FOLDERS", 20, "stopped after 20 folders"),
    ("SEARCH_ENTRIES", 30, "stopped after 30 entries"),
    ("SEARCH_SECONDS", 0.0, "stopped after 0 s"),
])
def test_each_bound_of_the_walk_is_said_when_it_ends_the_search(moved, tmp_path, capsys, monkeypatch, bound, value,
                                                                 words):
    shot, footage = moved
    search = tmp_path / "disk"
    for i in range(40):
        (search / f"folder{i:02d}").mkdir(parents=True)
    _move(footage, search / "zz" / "footage")
    monkeypatch.setattr(relink, bound, value)
    code, _out, err = cli(capsys, "relink", shot, "--source", search)
    assert code == 2 and "None of the 5 missing drawings" in _errors(err)[0], err
    assert any(words in line and line.startswith("warning: ") for line in err.splitlines()), err


def test_drawings_deeper_than_the_search_say_so(moved, tmp_path, capsys):
    shot, footage = moved
    search = tmp_path / "disk"
    _move(footage, search.joinpath(*"abcdef") / "footage")
    code, _out, err = cli(capsys, "relink", shot, "--source", search)
    assert code == 2, err
    assert any(f"more than {relink.SEARCH_DEPTH} levels" in line for line in err.splitlines()), err


def test_links_fifos_and_devices_named_like_drawings_are_not_taken(moved, tmp_path, capsys):
    shot, footage = moved
    search = tmp_path / "disk"
    decoy = search / "decoy"
    decoy.mkdir(parents=True)
    names = sorted(p.name for p in footage.iterdir())
    shutil.rmtree(footage)
    for i, name in enumerate(names):
        if i % 2 and hasattr(os, "mkfifo"):
            os.mkfifo(decoy / name)
        else:
            (decoy / name).symlink_to("/dev/zero")
    (search / "loop").symlink_to(search)  # a folder link back up: never followed
    code, _out, err = cli(capsys, "relink", shot, "--source", search)
    assert code == 2 and "None of the 5 missing drawings" in _errors(err)[0], err
