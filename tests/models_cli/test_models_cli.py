"""`tooncrafter-studio models check|convert` on small synthetic files."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.cli.main import run_cli  # noqa: E402


def test_check_prints_components_and_ok(reduced_ckpt, capsys):
    assert run_cli(["models", "check", str(reduced_ckpt), "--config", "reduced"]) == 0
    out = capsys.readouterr().out
    for words in ("ckpt (lightning)", "UNet", "VAE", "text encoder (CLIP)", "image encoder (CLIP)", "Resampler",
                  "schedule buffers", "fingerprint", "OK: every key and shape fits"):
        assert words in out


def test_check_of_a_folder_finds_the_model(reduced_ckpt, capsys):
    assert run_cli(["models", "check", str(reduced_ckpt.parent), "--config", "reduced", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["format"] == "ckpt" and data["path"].endswith("model.ckpt")
    assert data["components"]["UNet"]["parameters"] == 14_567_972


def test_check_against_the_512_model_fails_with_one_line(reduced_ckpt, capsys):
    assert run_cli(["-q", "models", "check", str(reduced_ckpt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model.ckpt does not fit the ToonCrafter 512 model")
    assert "wrong shape" in err[0]


def test_check_of_a_malicious_file_is_refused(tmp_path, capsys):
    import os

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "e": Evil()}, path)
    assert run_cli(["models", "check", str(path)]) == 2
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()


def test_convert_then_check(tmp_path, reduced_ckpt, capsys):
    out = tmp_path / "converted.safetensors"
    assert run_cli(["-q", "models", "convert", str(reduced_ckpt), "--out", str(out), "--dtype", "fp16",
                    "--config", "reduced"]) == 0
    assert "34 unused keys dropped" in capsys.readouterr().out
    assert out.stat().st_size < reduced_ckpt.stat().st_size / 2
    assert run_cli(["models", "check", str(out), "--config", "reduced", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["format"] == "safetensors" and len(data["dropped_unused"]) == 34
    assert data["metadata"]["source"] == "model.ckpt"
    # refuses to overwrite without --overwrite, and non-safetensors targets
    assert run_cli(["-q", "models", "convert", str(reduced_ckpt), "--out", str(out), "--config", "reduced"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert run_cli(["-q", "models", "convert", str(reduced_ckpt), "--out", str(tmp_path / "x.ckpt")]) == 2
    assert ".safetensors" in capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    assert run_cli(["models", "check", str(tmp_path / "none.ckpt")]) == 2
    assert "No model file" in capsys.readouterr().err
