"""Line art from image: outlines of a flat colour drawing become black lines on white, flat areas
stay white, transparent pages are paper; the CLI writes it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.media.lineart import line_art


def _pose():
    img = np.full((120, 160, 3), (236, 230, 210), np.uint8)
    cv2.circle(img, (80, 60), 30, (220, 80, 60), -1)  # a flat red disc, no outline
    cv2.line(img, (20, 110), (140, 110), (30, 30, 30), 2)  # a dark stroke
    return img


@pytest.mark.parametrize("method", ["xdog", "threshold"])
def test_edges_and_strokes_become_ink_and_flat_areas_stay_paper(method):
    art = line_art(_pose(), method)
    assert art.shape == (120, 160, 3) and art.dtype == np.uint8
    grey = art[:, :, 0]
    assert grey[110, 80] < 128  # the stroke
    assert grey[60, 80] > 200 and grey[15, 15] > 200  # inside the disc, the background
    if method == "xdog":
        assert grey[60, 49:52].min() < 128  # the disc's edge is drawn


def test_transparent_page_is_white_and_bad_input_is_refused():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 19:21] = (0, 0, 0, 255)
    art = line_art(rgba)
    assert art[5, 5, 0] == 255 and art[20, 20, 0] < 128
    with pytest.raises(InputError, match="method"):
        line_art(rgba, "canny")
    with pytest.raises(InputError, match="strength"):
        line_art(rgba, strength=9)


def test_cli_writes_line_art(tmp_path, capsys):
    src = tmp_path / "pose.png"
    cv2.imwrite(str(src), cv2.cvtColor(_pose(), cv2.COLOR_RGB2BGR))
    assert run_cli(["lineart", str(src), str(tmp_path / "sketch.png"), "--method", "threshold"]) == 0
    out = cv2.imread(str(tmp_path / "sketch.png"))
    assert out.shape == (120, 160, 3) and out[110, 80, 0] < 128
