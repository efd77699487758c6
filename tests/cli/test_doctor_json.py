"""`doctor --json` (the help says "print one JSON object"): a farm TD's host check reads it with a parser."""

from __future__ import annotations

import json

from tooncrafter_studio.cli.main import run_cli


def test_doctor_json_is_one_json_object_with_what_the_text_says(capsys, tmp_path):
    model = tmp_path / "model.ckpt"
    model.write_bytes(b"\0" * 1000)
    assert run_cli(["doctor", "--json", "--model", str(model)]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # the whole output, nothing before or after it
    assert report["model"] == {"path": str(model), "bytes": 1000}
    assert report["command_log"].endswith("cli.log")
    assert report["packages"]["numpy"]  # a version string
    assert set(report) >= {"version", "python", "platform", "torch", "engine_env", "devices", "ready"}
    assert isinstance(report["ready"], bool)

    assert run_cli(["doctor", "--model", str(model)]) == 0  # the text report still reads as before
    text = capsys.readouterr().out
    assert text.startswith("ToonCrafter Studio ") and f"Model: {model}" in text


def test_doctor_json_without_a_model_lists_where_it_looked(capsys, tmp_path):
    missing = tmp_path / "nowhere.ckpt"
    assert run_cli(["doctor", "--json", "--model", str(missing)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] is None and report["ready"] is False
    assert any(str(missing) in line for line in report["looked"])
