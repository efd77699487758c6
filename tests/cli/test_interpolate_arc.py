"""interpolate --arc and the engine's confidence in the command's output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.media import read_image, write_png


def _key(folder, name, x):
    img = np.full((120, 200, 3), (240, 236, 222), np.uint8)
    cv2.circle(img, (x, 80), 18, (222, 70, 60), -1, cv2.LINE_AA)
    cv2.circle(img, (x, 80), 18, (24, 22, 30), 2, cv2.LINE_AA)
    path = folder / name
    write_png(path, img)
    return path


def _red_centre(img):
    ys, xs = np.nonzero((img[..., 0] > 180) & (img[..., 1] < 120))
    return xs.mean(), ys.mean()


def test_interpolate_bends_the_path_and_reports_its_confidence(tmp_path, capsys):
    a, b = _key(tmp_path, "a.png", 40), _key(tmp_path, "b.png", 160)
    assert run_cli(["interpolate", str(a), str(b), "--count", "1", "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert "confidence (shapes + flow):" in err and "warning" not in err
    assert run_cli(["interpolate", str(a), str(b), "--count", "1", "--arc", "0,-0.25",
                    "--out", str(tmp_path / "c"), "--quiet"]) == 0
    straight = _red_centre(read_image(next((tmp_path / "s").glob("*.png"))))
    bent = _red_centre(read_image(next((tmp_path / "c").glob("*.png"))))
    assert bent[0] == pytest.approx(straight[0], abs=2) and bent[1] == pytest.approx(straight[1] - 30, abs=3)


@pytest.mark.parametrize("value", ["0", "a,b", "0,2", "0,0,0"])
def test_a_bad_arc_is_a_usage_error(tmp_path, capsys, value):
    a, b = _key(tmp_path, "a.png", 40), _key(tmp_path, "b.png", 160)
    with pytest.raises(SystemExit) as exc:
        run_cli(["interpolate", str(a), str(b), "--count", "1", "--arc", value, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "--arc" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
