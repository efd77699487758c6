"""What generate / interpolate / export write: where (takes/ links), with which mode (the umask), and
never over an input (the keys, the project's own drawings), whatever the flags."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from pipeline_factories import frame_image, make_project
from waiting import PROCESS_CEILING_S

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.media import write_png
from tooncrafter_studio.project.project import Project


def _digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _run(capsys, *argv) -> tuple[int, str]:
    try:
        code = run_cli([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ----------------------------------------------------------------- item 6: the umask


def test_everything_created_follows_the_umask(tmp_path, capsys, umask_027):
    project = make_project(tmp_path)
    assert _mode(project.project_file) == umask_027
    assert _run(capsys, "generate", project.folder, "--pair", "1:9", "--engine", "flow", "-q")[0] == 0
    frames = sorted((project.folder / "takes").rglob("*.png"))
    assert frames and {_mode(f) for f in frames} == {umask_027}
    keys = tmp_path / "footage"
    code, err = _run(capsys, "interpolate", keys / "walk.0001.png", keys / "walk.0009.png", "--count", "2",
                     "--out", tmp_path / "inb", "-q")
    assert code == 0, err
    assert {_mode(f) for f in (tmp_path / "inb").iterdir()} == {umask_027}
    old = os.umask(0o022)
    try:
        write_png(tmp_path / "plain.png", frame_image(1))
        assert _mode(tmp_path / "plain.png") == 0o644
    finally:
        os.umask(old)


# ----------------------------------------------------------------- item 5: takes/ as a link


def test_takes_folder_linking_outside_is_refused_before_writing(tmp_path, capsys):
    project = make_project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, project.folder / "takes")
    before = _digest(project.folder)
    code, err = _run(capsys, "generate", project.folder, "--pair", "1:9", "--engine", "flow", "-q")
    assert code == 2 and err.count("\n") == 1 and "inside the project folder" in err, err
    assert _digest(project.folder) == before and not any(elsewhere.iterdir())
    assert _run(capsys, "info", project.folder)[0] == 0  # and the project still opens


def test_takes_folder_linking_inside_the_project_is_written_and_read(tmp_path, capsys):
    project = make_project(tmp_path)
    (project.folder / "generated").mkdir()
    os.symlink("generated", project.folder / "takes")
    assert _run(capsys, "generate", project.folder, "--pair", "1:9", "--engine", "flow", "-q")[0] == 0
    shot = Project.open(project.folder).shot
    assert len(shot.takes) == 1 and list((project.folder / "generated").iterdir())


# ----------------------------------------------------------------- item 8: inputs are never replaced


def test_interpolate_never_replaces_its_keys_even_with_overwrite(tmp_path, capsys):
    keys = tmp_path / "k"
    keys.mkdir()
    write_png(keys / "a.0001.png", frame_image(0))
    write_png(keys / "a.0002.png", frame_image(8))
    before = _digest(keys)
    code, err = _run(capsys, "interpolate", keys / "a.0001.png", keys / "a.0002.png", "--count", "2", "--out", keys,
                     "--name", "a", "--overwrite", "-q")
    assert code == 2 and "is a key of this command" in err and err.count("\n") == 1, err
    assert _digest(keys) == before


def test_export_never_replaces_the_project_drawings_even_with_overwrite(tmp_path, capsys):
    project = make_project(tmp_path)
    footage = tmp_path / "footage"
    before = _digest(footage)
    code, err = _run(capsys, "export", project.folder, "--out", footage, "--name", "walk", "--overwrite",
                     "--timing-sheet", "none")
    assert code == 2 and "a file of this project" in err and err.count("\n") == 1, err
    assert _digest(footage) == before


# ----------------------------------------------------------------- item 10: one rule for seeds and params


@pytest.mark.parametrize("seed", ["-1", str(10**27)])
def test_interpolate_refuses_the_seeds_generate_refuses(tmp_path, capsys, seed):
    keys = tmp_path / "footage"
    project = make_project(tmp_path)
    for argv in (["interpolate", keys / "walk.0001.png", keys / "walk.0009.png", "--count", "1",
                  "--out", tmp_path / "o"], ["generate", project.folder, "--pair", "1:9"]):
        code, err = _run(capsys, *argv, "--seed", seed, "-q")
        assert code == 2 and "--seed must be a whole number from 0 to 2^63-1" in err, err
    assert not (tmp_path / "o").exists()


def test_unknown_param_names_are_refused_not_stored(tmp_path, capsys):
    project = make_project(tmp_path)
    before = project.project_file.read_bytes()
    code, err = _run(capsys, "generate", project.folder, "--pair", "1:9", "--engine", "flow", "--param",
                     "qualty=fast", "-q")
    assert code == 2 and "has no option qualty (it takes quality" in err, err
    assert project.project_file.read_bytes() == before
    assert _run(capsys, "generate", project.folder, "--pair", "1:9", "--engine", "flow", "--param",
                "quality=fast", "-q")[0] == 0


def test_numpy_warnings_do_not_reach_the_terminal(tmp_path):
    import subprocess
    import sys

    code = ("from tooncrafter_studio.core.logging import configure_logging\n"
            "configure_logging()\n"
            "import numpy as np\n"
            "np.log(np.zeros(2))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=PROCESS_CEILING_S)
    assert done.returncode == 0 and "RuntimeWarning" not in done.stderr, done.stderr
