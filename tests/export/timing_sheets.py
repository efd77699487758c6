"""Timing sheets written by hand from the XDTS rules, for the import tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tooncrafter_studio.media import write_png

IDENTIFIER = "exchangeDigitalTimeSheet Save Data"


def cell(frame: int, value: str, *options: str) -> dict:
    data = {"id": 0, "values": [value]}
    if options:
        data["options"] = list(options)
    return {"data": [data], "frame": frame}


def two_track_sheet() -> dict:
    """24 frames. Track A: key 1 with in-between marks at 2, 4, 6; key 2 held 8-11 (a hyphen at 10);
    empty 12-13; key 3 at 14 with a mark at 17; key 1 again from 20; closed by a null cell. Track B: a
    second character, not imported. Dialogue and camera work fields."""
    a = [cell(0, "1"), cell(2, "SYMBOL_TICK_1"), cell(4, "SYMBOL_TICK_1"), cell(6, "SYMBOL_TICK_1"),
         cell(8, "2"), cell(10, "SYMBOL_HYPHEN"), cell(12, "SYMBOL_NULL_CELL"), cell(14, "3"),
         cell(17, "SYMBOL_TICK_1"), cell(20, "1"), cell(24, "SYMBOL_NULL_CELL")]
    b = [cell(0, "1"), cell(6, "2"), cell(12, "SYMBOL_NULL_CELL")]
    return {
        "header": {"cut": "12", "scene": "3"},
        "timeTables": [{
            "duration": 24, "name": "cut12",
            "timeTableHeaders": [{"fieldId": 0, "names": ["A", "B"]}, {"fieldId": 3, "names": ["Serif"]},
                                 {"fieldId": 5, "names": ["Camera"]}],
            "fields": [
                {"fieldId": 0, "tracks": [{"trackNo": 0, "frames": a}, {"trackNo": 1, "frames": b}]},
                {"fieldId": 3, "tracks": [{"trackNo": 0, "frames": [{"data": [{"id": 0, "values": ["Hello!"]}],
                                                                    "frame": 2}]}]},
                {"fieldId": 5, "tracks": [{"trackNo": 0, "frames": [{"data": [{"id": 0, "values": ["FI"]}],
                                                                    "frame": 0}]}]},
            ],
        }],
        "version": 5,
    }


def xdts(document: dict) -> str:
    return IDENTIFIER + "\n" + json.dumps(document, indent=1) + "\n"


def key_drawing(i: int, width: int = 32, height: int = 24) -> np.ndarray:
    image = np.full((height, width, 3), 235, np.uint8)
    image[8:16, 2 + 6 * i: 10 + 6 * i] = (30, 40, 50)
    return image


def make_keys(folder: Path, names: tuple[str, ...] = ("A_0001", "A_0002", "A_0003")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_png(folder / f"{name}.png", key_drawing(i))
    return folder
