import numpy as np

from tooncrafter_studio.engines.tooncrafter.colour import lab_stats, match_frame, match_to_keys


def _image(seed, shift=(0, 0, 0), gain=1.0):
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(16, 24, 3)).astype(np.float32)
    base = np.kron(base, np.ones((8, 8, 1), np.float32))  # flat patches, like cels
    return np.clip(base * gain + np.array(shift, np.float32), 0, 255).astype(np.uint8)


def test_statistics_move_to_the_keys():
    start, end = _image(0), _image(1)
    drifted = _image(2, shift=(30, 10, -25), gain=0.8)
    target = lab_stats(start).lerp(lab_stats(end), 0.5)
    before = lab_stats(drifted)
    after = lab_stats(match_to_keys([drifted], [0.5], start, end)[0])
    assert np.abs(after.mean - target.mean).max() < 0.25 * np.abs(before.mean - target.mean).max()
    assert np.abs(after.std - target.std).sum() < 0.5 * np.abs(before.std - target.std).sum()


def test_time_weights_the_keys():
    dark, bright = _image(0, gain=0.5), _image(0, gain=1.2)
    frame = _image(3)
    near_start = lab_stats(match_to_keys([frame], [0.1], dark, bright)[0])
    near_end = lab_stats(match_to_keys([frame], [0.9], dark, bright)[0])
    assert near_start.mean[0] < near_end.mean[0] - 10


def test_mask_leaves_bars_and_ignores_them():
    frame = _image(4, shift=(40, 40, 40))
    frame[:32] = 0  # a bar
    mask = np.ones(frame.shape[:2], bool)
    mask[:32] = False
    key = _image(5)
    key[:32] = 0
    out = match_frame(frame, lab_stats(key, mask), mask)
    assert (out[:32] == 0).all()
    assert np.abs(lab_stats(out, mask).mean - lab_stats(key, mask).mean).max() < 2.0


def test_strength_zero_is_identity_up_to_rounding():
    frame = _image(6)
    out = match_frame(frame, lab_stats(_image(7)), strength=0.0)
    assert np.abs(out.astype(int) - frame.astype(int)).max() <= 1
