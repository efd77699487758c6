"""A tired animator's (or an attacker's) arguments: refused in one line before anything is written."""

from __future__ import annotations

import pytest
from hostile_kit import make_project, refused


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_arguments")
    return make_project(root)


LONG = "x" * 300

CASES = [
    (["keys", "{shot}", "--frames", "1-1000000000"], "beyond the limit"),
    (["keys", "{shot}", "--frames", "5-1"], "'5-1' is not a frame number"),
    (["keys", "{shot}", "--frames", "1--5"], "is not a frame number"),
    (["keys", "{shot}", "--frames", "0"], "numbered from 1"),
    (["keys", "{shot}", "--frames", "9" * 5000], "is not a frame number"),
    (["keys", "{shot}", "--frames", "1e9"], "is not a frame number"),
    (["keys", "{shot}", "--frames", ","], "No frames"),
    (["keys", "{shot}", "--frames", "99"], "outside the shot"),
    (["generate", "{shot}", "--pair", "1:1"], ""),
    (["generate", "{shot}", "--pair", "a:b:c"], "START:END"),
    (["generate", "{shot}", "--count", str(10**30)], "too many"),
    (["generate", "{shot}", "--count", "-1"], "at least 1"),
    (["generate", "{shot}", "--times", "nan"], "outside (0, 1)"),
    (["generate", "{shot}", "--times", "0.5,0.5"], "increase"),
    (["generate", "{shot}", "--times", "inf"], "outside (0, 1)"),
    (["generate", "{shot}", "--seed", "-1"], "--seed must be"),
    (["generate", "{shot}", "--seeds", "100000"], "--seeds must be from 1 to 1,000"),
    (["generate", "{shot}", "--seeds", "0"], "--seeds must be from 1"),
    (["generate", "{shot}", "--seed", str(2**63)], "--seed must be"),
    (["generate", "{shot}", "--param", "=1"], "NAME=VALUE"),
    (["generate", "{shot}", "--param", "qualty=fast"], "has no option qualty"),
    (["generate", "{shot}", "--engine", "../../evil"], "Unknown engine"),
    (["export", "{shot}", "--out", "{tmp}/o", "--name", "../evil"], "cannot be used as a file name"),
    (["export", "{shot}", "--out", "{tmp}/o", "--name", LONG], "too long"),
    (["export", "{shot}", "--out", "{tmp}/o", "--padding", "99"], "Padding"),
    (["export", "{shot}", "--out", "{tmp}/o", "--start-number", str(10**25)], "above the limit"),
    (["export", "{shot}", "--out", "{tmp}/o", "--workers", "0"], "--workers"),
    (["export", "{shot}", "--out", "/dev/null"], "/dev/null"),
    (["interpolate", "{footage}/walk.0001.png", "{footage}/walk.0005.png", "--count", "1", "--out", "{tmp}/o",
      "--name", LONG, "-q"], "too long"),
    (["interpolate", "{footage}/walk.0001.png", "{footage}/walk.0005.png", "--count", "1", "--out", "{tmp}/o",
      "--seed", str(10**27), "-q"], "--seed must be"),
    (["interpolate", "{footage}/walk.0001.png", "{footage}/walk.0005.png", "--count", "0", "--out", "{tmp}/o",
      "-q"], ""),
    (["interpolate", "{footage}/walk.0001.png", "{footage}/walk.0005.png", "--times", "0.2,0.1", "--out",
      "{tmp}/o", "-q"], "increase"),
    (["interpolate", "{footage}/walk.0001.png", "{footage}/walk.0005.png", "--count", "2", "--out",
      "{footage}", "--name", "walk", "--start-number", "1", "--overwrite", "-q"], "is a key of this command"),
    (["new", "{tmp}/n", "--source", "{footage}/walk.%099999999999d.png", "-q"], "more than 10 digits"),
    (["new", "{tmp}/" + LONG, "--source", "{footage}", "-q"], "too long"),
    (["new", "{shot}", "--source", "{footage}", "-q"], "already a project"),
    (["new", "{tmp}/n", "--source", "{footage}", "--fps", "nan", "-q"], "--fps"),
    (["relink", "{shot}", "--source", "/dev/null"], ""),
]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[" ".join(c[0][:1] + c[0][2:4])[:40] for c in CASES])
def test_hostile_argument(shot, tmp_path, capsys, index):
    argv, words = CASES[index]
    names = {"shot": shot, "footage": shot.parent / "footage", "tmp": tmp_path}
    argv = [a.format(**names) for a in argv]
    if argv[0] == "relink":  # nothing is missing: relink says so and succeeds; with a gap it must refuse
        (shot.parent / "footage" / "walk.0003.png").rename(tmp_path / "walk.0003.png")
        try:
            refused(capsys, argv, 2, ("/dev/null",), shot.parent, tmp_path)
        finally:
            (tmp_path / "walk.0003.png").rename(shot.parent / "footage" / "walk.0003.png")
        return
    refused(capsys, argv, 2, (words,), shot.parent, tmp_path)
