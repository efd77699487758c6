import numpy as np
import pytest

from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.engines.tooncrafter.fit import check_model_size, plan_fit


def _smooth(w, h, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        127 + 100 * np.sin(xx / w * 3 + rng.uniform(0, 3)),
        127 + 100 * np.cos(yy / h * 2 + rng.uniform(0, 3)),
        127 + 80 * np.sin((xx + yy) / (w + h) * 4),
    ], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(1920, 1080), (640, 480), (300, 200), (512, 320), (1080, 1920), (777, 333)])
@pytest.mark.parametrize("mode", ["letterbox", "crop"])
def test_points_round_trip_exactly(size, mode):
    plan = plan_fit(*size, mode=mode)
    for x, y in [(0, 0), (size[0], size[1]), (size[0] / 3, size[1] * 0.7)]:
        mx, my = plan.point_to_model(x, y)
        bx, by = plan.point_from_model(mx, my)
        assert bx == pytest.approx(x, abs=1e-9) and by == pytest.approx(y, abs=1e-9)


@pytest.mark.parametrize("size", [(1920, 1080), (640, 480), (300, 200), (1080, 1920)])
def test_letterbox_keeps_everything_and_aspect(size):
    plan = plan_fit(*size, mode="letterbox")
    x0, y0, x1, y1 = plan.content_box()
    assert (x1 - x0) <= 512 and (y1 - y0) <= 320
    assert (x1 - x0) == 512 or (y1 - y0) == 320  # touches two sides
    assert abs((x1 - x0) / (y1 - y0) - size[0] / size[1]) < 0.02
    assert plan.source_box() == (0, 0, size[0], size[1])
    img = _smooth(*size)
    model = plan.to_model(img)
    assert model.shape == (320, 512, 3)
    assert (model[~plan.content_mask()] == 0).all()  # bars
    back = plan.from_model(model)
    assert back.shape == img.shape and back.dtype == img.dtype
    err = np.abs(back.astype(int) - img.astype(int)).mean()
    assert err < 3.0


@pytest.mark.parametrize("size", [(1920, 1080), (640, 480), (1080, 1920)])
def test_crop_fills_frame_and_maps_back_into_the_seen_region(size):
    plan = plan_fit(*size, mode="crop")
    assert plan.content_mask().all()
    img = _smooth(*size, seed=1)
    model = plan.to_model(img)
    fill = np.full_like(img, 7)
    back = plan.from_model(model, fill=fill)
    assert back.shape == img.shape
    sx0, sy0, sx1, sy1 = plan.source_box()
    assert (sx1 - sx0) < size[0] or (sy1 - sy0) < size[1]
    seen = back[sy0:sy1, sx0:sx1].astype(int)
    assert np.abs(seen - img[sy0:sy1, sx0:sx1].astype(int)).mean() < 3.0
    outside = np.ones(img.shape[:2], bool)
    outside[sy0:sy1, sx0:sx1] = False
    assert (back[outside] == 7).all()


def test_identity_at_model_size_and_rgba_uint16():
    img = (np.arange(320 * 512 * 4, dtype=np.uint64) % 65535).astype(np.uint16).reshape(320, 512, 4)
    for mode in ("letterbox", "crop"):
        plan = plan_fit(512, 320, mode)
        assert np.array_equal(plan.from_model(plan.to_model(img)), img)


def test_bad_inputs():
    with pytest.raises(InputError):
        plan_fit(100, 100, mode="stretch")
    with pytest.raises(InputError):
        check_model_size(500, 320)
    with pytest.raises(InputError):
        plan_fit(100, 100).to_model(np.zeros((50, 100, 3), np.uint8))
