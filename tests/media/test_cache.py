"""Frame cache budget, LRU order and thread safety; thumbnails in memory and on disk."""

from __future__ import annotations

import threading

import numpy as np

from tooncrafter_studio.media.cache import FrameCache, ThumbnailCache, thumbnail
from tooncrafter_studio.media.imageio import read_image, write_png


def block(n_bytes: int, value: int = 0) -> np.ndarray:
    return np.full((n_bytes,), value, np.uint8)


def test_budget_evicts_least_recently_used():
    cache = FrameCache(budget_bytes=300)
    for key in "abc":
        cache.put(key, block(100))
    assert cache.get("a") is not None  # a is now most recent
    cache.put("d", block(100))
    assert "b" not in cache and "a" in cache and "c" in cache and "d" in cache
    assert cache.size_bytes == 300


def test_oversized_frame_not_kept_and_budget_shrink():
    cache = FrameCache(budget_bytes=100)
    cache.put("big", block(101))
    assert "big" not in cache and cache.size_bytes == 0
    cache.put("x", block(60))
    cache.put("y", block(40))
    cache.set_budget(50)
    assert "x" not in cache and "y" in cache


def test_cached_frames_are_read_only_and_loaded_once():
    cache = FrameCache(1000)
    calls = []
    loader = lambda: calls.append(1) or block(10, 7)  # noqa: E731
    a = cache.get_or_load("k", loader)
    b = cache.get_or_load("k", loader)
    assert a is b and len(calls) == 1 and not a.flags.writeable


def test_thread_safety_under_concurrent_use():
    cache = FrameCache(budget_bytes=50 * 64)
    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(2000):
                key = int(rng.integers(0, 100))
                got = cache.get_or_load(key, lambda k=key: block(64, k))
                assert got[0] == key
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.size_bytes <= cache.budget_bytes
    assert cache.size_bytes == sum(v.nbytes for v in cache._items.values())


def test_thumbnail_size_and_depth():
    big = np.zeros((300, 600, 3), np.uint16)
    big[:, :300] = 65535
    small = thumbnail(big, 100)
    assert small.shape == (50, 100, 3) and small.dtype == np.uint8
    assert small[:, :45].min() == 255 and small[:, 55:].max() == 0
    tiny = np.zeros((10, 20, 4), np.uint8)
    assert thumbnail(tiny, 100).shape == (10, 20, 4)  # never enlarged


def test_thumbnail_disk_cache(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    write_png(tmp_path / "f.png", image)
    loads = []

    def loader():
        loads.append(1)
        return read_image(tmp_path / "f.png")
    first = ThumbnailCache(tmp_path / "thumbs").get(tmp_path / "f.png", 32, loader)
    assert first.shape == (16, 32, 3)
    assert len(list((tmp_path / "thumbs").rglob("*.png"))) == 1
    second = ThumbnailCache(tmp_path / "thumbs").get(tmp_path / "f.png", 32, loader)  # a new session
    assert len(loads) == 1
    np.testing.assert_array_equal(first, second)
