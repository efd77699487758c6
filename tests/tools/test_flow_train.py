"""The flow engine's training tools: the cartoon generator and the torch <-> OpenCV agreement."""

from __future__ import annotations

import numpy as np
import pytest

from tools.flow_train.cartoon import make_clip


def _luma(img):
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def test_generator_is_seeded_and_draws_ink_on_light_fills():
    frames, stats = make_clip(7, 160, 100, k=2)
    again, _ = make_clip(7, 160, 100, k=2)
    assert len(frames) == 3 and frames[0].shape == (100, 160, 3)
    for f, g in zip(frames, again):
        np.testing.assert_array_equal(f, g)
    assert not np.array_equal(frames[0], make_clip(8, 160, 100, k=2)[0][0])
    luma = _luma(frames[0])
    # The scorer's ink threshold separates our lines from our fills: some ink, mostly light.
    assert 0.002 < (luma < 100).mean() < 0.3
    assert (luma >= 120).mean() > 0.6
    assert stats["K"] == 2


def test_torch_training_graph_and_the_shipped_opencv_graph_agree():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from tools.flow_train import train
    from tooncrafter_studio.engines.flow.blend import CHANNELS, LearnedBlend

    model = train.build_model()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    x = torch.rand(1, CHANNELS, 24, 32)
    images = torch.rand(1, 6, 48, 64)
    share = torch.rand(1, 48, 64)
    ours = train.blended(model, x, images, share)[0].permute(1, 2, 0).detach().numpy()
    blend = LearnedBlend(train.to_onnx(model))
    new_share = blend.apply(x.numpy(), share[0].numpy(), (64, 48))
    w0 = images[0, :3].permute(1, 2, 0).numpy()
    w1 = images[0, 3:].permute(1, 2, 0).numpy()
    engine = w1 + new_share[..., None] * (w0 - w1)
    np.testing.assert_allclose(engine, ours, atol=2e-3)
