"""One validation of weight files for check, convert, the engine's pre-flight and loading: hostile
safetensors headers, malformed pickles, NaN weights, fp16 overflow and non-regular files are each
refused with one clear line, the same way on every path, and nothing is written."""

from __future__ import annotations

import json
import os
import struct
import threading

import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.cli.main import EXIT_FAILED, run_cli  # noqa: E402
from tooncrafter_studio.core.errors import ModelError  # noqa: E402
from tooncrafter_studio.diffusion.weights.checkpoint import (  # noqa: E402
    NonFiniteWeights,
    WeightFile,
    convert,
    load_model,
)


def _safetensors(path, header=None, data=b"", raw=None):
    text = raw if raw is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


F32_1 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}

HOSTILE_HEADERS = {
    # name: (header or raw bytes, data, words the message must contain)
    "list": ([1, 2], b"", "header is a list"),
    "non-object entry": ({"a": 5}, b"", "described by a number"),
    "no data_offsets": ({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, "no data_offsets"),
    "string shape": ({"a": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}}, b"\0" * 4, "invalid shape"),
    "bool shape": ({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4, "invalid shape"),
    "5000-digit dimension": (b'{"a":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,4]}}',
                             b"\0" * 4, "unreadable header"),
    "400-digit dimension": (b'{"a":{"dtype":"F32","shape":[' + b"9" * 400 + b'],"data_offsets":[0,4]}}',
                            b"\0" * 4, "over the limit"),
    "huge dimension": ({"a": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 4]}}, b"\0" * 4,
                       "over the limit"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, b"", "unreadable header"),
    "overlapping offsets": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "overlaps"),
    "offsets not matching the size": ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8,
                                      "needs 16"),
    "negative offset": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, b"\0" * 8,
                        "invalid data offsets"),
    "hole between tensors": ({"a": F32_1, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}},
                             b"\0" * 12, "belong to no tensor"),
    "bytes after the last tensor": ({"a": F32_1}, b"\0" * 12, "after its last tensor"),
    "unknown dtype": ({"a": {"dtype": "F8_E9", "shape": [1], "data_offsets": [0, 1]}}, b"\0", "unsupported type"),
    "bad metadata": ({"__metadata__": [1], "a": F32_1}, b"\0" * 4, "__metadata__"),
    "truncated data": ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "truncated"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_hostile_safetensors_headers_are_refused_the_same_way_everywhere(tmp_path, case, reduced_expected, capsys):
    header, data, words = HOSTILE_HEADERS[case]
    raw = header if isinstance(header, bytes) else None
    path = _safetensors(tmp_path / "bad.safetensors", None if raw else header, data, raw)
    with pytest.raises(ModelError, match=words) as opened:
        WeightFile(path)
    assert "bad.safetensors" in str(opened.value)
    out = tmp_path / "out.safetensors"
    with pytest.raises(ModelError) as converted:
        convert(path, out, "fp16", reduced_expected)
    assert str(converted.value) == str(opened.value)  # check and convert say the same thing
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors"]
    code = run_cli(["-q", "models", "check", str(path), "--config", "reduced"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code not in (0, EXIT_FAILED)  # an input problem, not "unexpected"
    assert len(err) == 1 and words in err[0]


MALFORMED_PICKLES = {
    "memo miss": b"\x80\x02h\x05.",
    "stack underflow": b"\x80\x02R.",
    "tuple without mark": b"\x80\x02t.",
    "100,000 marks": b"\x80\x02" + b"(" * 100_000 + b".",
    "cut after the protocol": b"\x80\x02",
}


@pytest.mark.parametrize("case", sorted(MALFORMED_PICKLES))
def test_malformed_pickles_are_damaged_files_not_crashes(tmp_path, case, capsys):
    path = tmp_path / "model.ckpt"
    path.write_bytes(MALFORMED_PICKLES[case])
    with pytest.raises(ModelError, match="cannot be read as a PyTorch checkpoint"):
        WeightFile(path)
    code = run_cli(["-q", "models", "check", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code not in (0, EXIT_FAILED) and len(err) == 1 and "model.ckpt" in err[0]


def _poisoned(tmp_path, state, key, value):
    poisoned = dict(state)
    poisoned[key] = torch.full_like(state[key], value)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": poisoned}, path)
    return path


def _a_weight(state):
    return next(k for k in state if k.startswith("model.diffusion_model.") and state[k].ndim == 4)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_weights_are_refused_by_check_convert_load_and_the_engine(tmp_path, reduced_state, reduced_expected,
                                                                     reduced_config, value, capsys, monkeypatch):
    key = _a_weight(reduced_state)
    path = _poisoned(tmp_path, reduced_state, key, value)
    with pytest.raises(NonFiniteWeights, match="NaN or infinite") as checked:
        WeightFile(path).check(reduced_expected)
    assert key in str(checked.value)
    out = tmp_path / "out.safetensors"
    with pytest.raises(NonFiniteWeights):
        convert(path, out, "fp16", reduced_expected)
    assert not out.exists()
    with pytest.raises(NonFiniteWeights):
        load_model(path, reduced_config)
    assert run_cli(["-q", "models", "check", str(path), "--config", "reduced", "--json"]) not in (0, EXIT_FAILED)
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is False and report["non_finite"] == [key]
    # the engine's pre-flight uses the same check
    from tooncrafter_studio.diffusion.weights import checkpoint
    from tooncrafter_studio.engines.tooncrafter import engine

    monkeypatch.setattr(checkpoint.ExpectedKeys, "for_config", classmethod(lambda cls, *a, **k: reduced_expected))
    with pytest.raises(NonFiniteWeights):
        engine._check_model_file(path)


def test_a_nan_in_the_middle_of_a_weight_is_caught_when_streaming(tmp_path, reduced_state, reduced_expected,
                                                                   reduced_config):
    """The sampled check reads the ends of each tensor; convert and load check every value."""
    key = max((k for k in reduced_state if "." in k), key=lambda k: reduced_state[k].numel())
    state = dict(reduced_state)
    middle = state[key].clone().reshape(-1)
    assert middle.numel() > 4096
    middle[middle.numel() // 2] = float("nan")
    state[key] = middle.reshape(reduced_state[key].shape)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": state}, path)
    WeightFile(path).check(reduced_expected)  # the sample misses it ...
    with pytest.raises(NonFiniteWeights, match=key.replace(".", r"\.")):
        convert(path, tmp_path / "out.safetensors", "fp32", reduced_expected)  # ... the full pass does not
    with pytest.raises(NonFiniteWeights):
        load_model(path, reduced_config)


def test_fp16_overflow_is_named_as_a_precision_problem(tmp_path, reduced_state, reduced_expected):
    key = _a_weight(reduced_state)
    path = _poisoned(tmp_path, reduced_state, key, 1e6)
    WeightFile(path).check(reduced_expected)  # finite in the file: fine
    with pytest.raises(ModelError, match="too large for float16.*bf16") as info:
        convert(path, tmp_path / "half.safetensors", "fp16", reduced_expected)
    assert not isinstance(info.value, NonFiniteWeights)
    convert(path, tmp_path / "bf16.safetensors", "bf16", reduced_expected)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    link = tmp_path / "zero.ckpt"
    link.symlink_to("/dev/zero")
    for path in (fifo, link):
        result: list = []
        worker = threading.Thread(target=lambda p=path, out=result: out.append(run_cli(["-q", "models", "check",
                                                                                        str(p)])), daemon=True)
        worker.start()
        worker.join(20)
        assert not worker.is_alive(), f"models check blocked on {path.name}"
        assert result[0] not in (0, EXIT_FAILED)
        assert "not a regular file" in capsys.readouterr().err
