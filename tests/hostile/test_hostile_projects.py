"""Hostile project.json files, opened by every command: one line naming the file, nothing written."""

from __future__ import annotations

import json
import os

import pytest
from hostile_kit import cli, make_project, refused


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_projects")
    folder = make_project(root)
    return root, (folder / "project.json").read_text()


def _mutate(data: dict, path: list, value) -> dict:
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


CASES = {
    "deep-nesting": lambda text: "[" * 200_000 + "]" * 200_000,
    "huge-integer": lambda text: text.replace('"fps": 24.0', '"fps": ' + "9" * 6000, 1),
    "not-utf8": lambda text: "\udcff".encode("utf-8", "surrogateescape").decode("latin-1") + text,
    "empty": lambda text: "",
    "null": lambda text: "null",
    "nan-fps": lambda text: text.replace('"fps": 24.0', '"fps": NaN', 1),
    "future": lambda text: text.replace('"schema_version": 1', '"schema_version": 99', 1),
    "cell-100M": lambda text: json.dumps(_mutate(json.loads(text), ["shot", "cells", 0, "length"], 100_000_000)),
    "giant-frame": lambda text: json.dumps(_mutate(_mutate(json.loads(text), ["shot", "width"], 20_000),
                                                   ["shot", "height"], 20_000)),
    "cells-string": lambda text: json.dumps(_mutate(json.loads(text), ["shot", "cells"], "many")),
    "drawing-id-escape": lambda text: text.replace('"d0001"', '"../../etc"'),
    "take-file-absolute": lambda text: json.dumps(_mutate(json.loads(text), ["shot", "takes"], [
        {"id": "t1", "start_key": "d0001", "end_key": "d0005", "engine": {}, "params": {},
         "frames": [{"file": "/etc/passwd", "offset": 1, "time": 0.5}]}])),
    "take-file-climbs": lambda text: json.dumps(_mutate(json.loads(text), ["shot", "takes"], [
        {"id": "t1", "start_key": "d0001", "end_key": "d0005", "engine": {}, "params": {},
         "frames": [{"file": "takes/../../outside.png", "offset": 1, "time": 0.5}]}])),
    "frames-list-bomb": lambda text: json.dumps(_mutate(json.loads(text), ["shot", "sources", 0, "frame_count"],
                                                         10**15)),
    "seed-negative": lambda text: json.dumps(_mutate(json.loads(text), ["shot", "segments"], [
        {"start_key": "d0001", "end_key": "d0005", "settings": {"seed": -3}}])),
}

COMMANDS = {
    "info": lambda folder, out: ["info", folder],
    "keys": lambda folder, out: ["keys", folder, "--frames", "2"],
    "generate": lambda folder, out: ["generate", folder, "--all", "--engine", "crossfade", "-q"],
    "export": lambda folder, out: ["export", folder, "--out", out],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_project_file(original, tmp_path, capsys, case):
    root, text = original
    folder = tmp_path / "shot"
    folder.mkdir()
    mutated = CASES[case](text)
    (folder / "project.json").write_bytes(mutated.encode("latin-1") if case == "not-utf8" else mutated.encode())
    os.symlink(root / "footage", tmp_path / "footage")
    for command, make in COMMANDS.items():
        refused(capsys, make(folder, tmp_path / "out"), 2, (str(folder / "project.json"),), tmp_path, root)
        assert not (tmp_path / "out").exists(), command


def test_take_frame_linking_outside_the_project(original, tmp_path, capsys):
    root, text = original
    folder = tmp_path / "shot"
    (folder / "takes" / "t1").mkdir(parents=True)
    os.symlink("/etc/hostname", folder / "takes" / "t1" / "0001.png")
    data = _mutate(json.loads(text), ["shot", "takes"], [
        {"id": "t1", "start_key": "d0001", "end_key": "d0005", "engine": {}, "params": {},
         "frames": [{"file": "takes/t1/0001.png", "offset": 1, "time": 0.5}]}])
    (folder / "project.json").write_text(json.dumps(data))
    refused(capsys, ["info", folder], 2, ("outside the project folder",), tmp_path)


def test_project_folder_given_as_a_file_or_device(tmp_path, capsys):
    (tmp_path / "plain.txt").write_text("hello")
    for target in (tmp_path / "plain.txt", "/dev/zero", tmp_path / "missing"):
        refused(capsys, ["info", target], 2, (str(target),), tmp_path)


def test_a_project_of_the_limit_size_still_opens(original, tmp_path, capsys):
    root, text = original
    data = json.loads(text)
    data["shot"]["cells"][0]["length"] = 10_000  # the longest exposure allowed
    folder = tmp_path / "shot"
    folder.mkdir()
    (folder / "project.json").write_text(json.dumps(data))
    code, out, err = cli(capsys, "info", folder)
    assert code == 0 and "10004 frames" in out, err
