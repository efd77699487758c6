"""Hostile weight files read by `models check` (torch-free path: the safetensors header is read first).

Numbers in a header are outside text: a 400-digit dimension or offset must be a damaged file (exit 2,
one line naming it), never an OverflowError from turning it into a float."""

from __future__ import annotations

import struct

import pytest
from hostile_kit import refused

from tooncrafter_studio.core.errors import ModelError
from tooncrafter_studio.diffusion.weights.safetensors_header import read_header

DIGITS_400 = b"9" * 400

HEADERS = {
    # name: (raw header, data, words the one line must contain)
    "400-digit dimension": (b'{"a":{"dtype":"F32","shape":[' + DIGITS_400 + b'],"data_offsets":[0,4]}}',
                            b"\0" * 4, "over the limit"),
    "400-digit dimension times zero": (b'{"a":{"dtype":"F32","shape":[0,' + DIGITS_400 + b'],"data_offsets":[0,0]}}',
                                       b"", ""),
    "eight 400-digit dimensions": (b'{"a":{"dtype":"F32","shape":[' + b",".join([DIGITS_400] * 8)
                                   + b'],"data_offsets":[0,4]}}', b"\0" * 4, "over the limit"),
    "400-digit offset": (b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,' + DIGITS_400 + b']}}',
                         b"\0" * 4, "spans"),
}


def _write(path, raw: bytes, data: bytes):
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize("case", sorted(HEADERS))
def test_huge_numbers_in_a_safetensors_header(tmp_path, capsys, case):
    raw, data, words = HEADERS[case]
    path = _write(tmp_path / "bad.safetensors", raw, data)
    if not words:  # a zero dimension makes the tensor empty: a valid (if odd) file
        assert read_header(path).entries["a"].end == 0
        return
    with pytest.raises(ModelError, match=words):
        read_header(path)
    refused(capsys, ["-q", "models", "check", path, "--config", "reduced"], 2, ("bad.safetensors", words), tmp_path)
