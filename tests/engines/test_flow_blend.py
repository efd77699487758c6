"""The flow engine's learned blend: the shipped network, its use, and its fall-back."""

from __future__ import annotations

import numpy as np
from engine_synthetic import disc_frame, fill_centroid

from tooncrafter_studio.engines.base import InterpolationRequest
from tooncrafter_studio.engines.flow import blend as flow_blend
from tooncrafter_studio.engines.flow.engine import FlowEngine
from tooncrafter_studio.engines.flow.warp import SegmentInterpolator, settings_for


def test_shipped_network_runs_on_the_feature_layout():
    blend = flow_blend.shipped()
    assert blend is not None, "tooncrafter_studio/engines/flow/blend.onnx is missing or unreadable"
    inputs = np.random.default_rng(0).random((1, flow_blend.CHANNELS, 20, 30), dtype=np.float32)
    out = blend.predict(inputs)
    assert out.shape[1:] == (20, 30) and np.isfinite(out).all()


def test_learned_blend_changes_the_frame_and_keeps_the_motion():
    assert settings_for("best").learned
    a, b = disc_frame((40.0, 48.0)), disc_frame((80.0, 48.0))
    learned = SegmentInterpolator(a, b, settings_for("best")).frame(0.5)
    hand = SegmentInterpolator(a, b, settings_for("best").__class__(**{**settings_for("best").__dict__,
                                                                       "learned": False})).frame(0.5)
    assert learned.shape == a.shape and learned.dtype == np.uint8
    assert np.abs(learned.astype(int) - hand.astype(int)).max() > 0  # the network does something
    x, _ = fill_centroid(learned)
    assert abs(x - fill_centroid(disc_frame((60.0, 48.0)))[0]) <= 1.0


def test_sixteen_bit_and_alpha_keys_take_the_hand_made_blend():
    a, b = disc_frame((40.0, 48.0)), disc_frame((80.0, 48.0))
    wide_a, wide_b = a.astype(np.uint16) * 257, b.astype(np.uint16) * 257
    frame = FlowEngine().interpolate(InterpolationRequest(wide_a, wide_b, [0.5])).frames[0]
    assert frame.dtype == np.uint16
    x, _ = fill_centroid((frame // 257).astype(np.uint8))
    assert abs(x - fill_centroid(disc_frame((60.0, 48.0)))[0]) <= 1.0
