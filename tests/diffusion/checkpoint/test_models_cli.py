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


def _sparse_512_safetensors(path, shapes):
    """A full-size 512-model .safetensors file whose data is a hole (no disk space used)."""
    import math
    import struct

    header, offset = {}, 0
    for key, shape in shapes.items():
        dtype, size = ("F32", 4) if "." not in key else ("F16", 2)
        n = math.prod(shape) * size
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    if path.stat().st_blocks * 512 > 64 << 20:
        path.unlink()
        pytest.skip("this filesystem has no sparse files")
    return offset


def test_check_a_full_size_512_file_without_the_real_weights(tmp_path, capsys):
    """Every key and shape of the real model at full size (5.25 GB of fp16, stored as a hole)."""
    from tooncrafter_studio.diffusion.weights.checkpoint import ExpectedKeys

    expected = ExpectedKeys.for_config()
    path = tmp_path / "tooncrafter_512.safetensors"
    payload = _sparse_512_safetensors(path, expected.used)
    assert run_cli(["models", "check", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["payload_bytes"] == payload
    assert data["parameters"] == 2_625_430_449 - 66_681_366 - 9_000
    assert data["components"]["UNet"]["parameters"] == 1_438_854_980
    assert len(data["dropped_unused"]) == 34
    # the same file without the text encoder (a "pruned" variant) is refused by name
    pruned = tmp_path / "pruned.safetensors"
    _sparse_512_safetensors(pruned, {k: s for k, s in expected.used.items() if not k.startswith("cond_stage_model.")})
    assert run_cli(["models", "check", str(pruned)]) == 2
    err = capsys.readouterr().err
    assert "without the CLIP text encoder" in err and "cond_stage_model.model." in err
