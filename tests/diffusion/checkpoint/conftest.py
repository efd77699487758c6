"""Small synthetic checkpoints of the reduced model (same keys as the 512 model, small shapes)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def reduced_config():
    from tooncrafter_studio.diffusion.nets.config import ToonCrafterConfig

    return ToonCrafterConfig.reduced()


@pytest.fixture(scope="session")
def reduced_expected(reduced_config):
    from tooncrafter_studio.diffusion.weights.checkpoint import ExpectedKeys

    return ExpectedKeys.for_config(reduced_config, name="reduced ToonCrafter (test)")


@pytest.fixture(scope="session")
def reduced_state(reduced_config):
    """A reduced state dict with cheap, distinct, deterministic values (not the fill rule: speed)."""
    from tooncrafter_studio.diffusion.nets.model import build_model

    model = build_model(reduced_config, device="meta")
    state = {}
    generator = torch.Generator().manual_seed(0)
    for index, (key, tensor) in enumerate(model.state_dict(keep_vars=True).items()):
        if "." not in key:
            continue
        state[key] = torch.randn(tensor.shape, generator=generator) * 0.1 + index * 1e-3
    from tooncrafter_studio.diffusion.nets.schedule import schedule_buffers

    buffers = schedule_buffers(reduced_config.schedule)
    return {k: buffers[k] if "." not in k else state[k] for k in model.state_dict(keep_vars=True)}


@pytest.fixture(scope="session")
def reduced_ckpt(tmp_path_factory, reduced_state):
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    torch.save({"state_dict": reduced_state, "epoch": 7, "global_step": 1000}, path)
    return path
