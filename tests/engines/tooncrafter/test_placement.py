"""Memory-mode placement on a toy model; the `meta` device stands in for the GPU."""

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tooncrafter_studio.diffusion.run.memory import apply_memory_mode  # noqa: E402

ENCODERS = ("cond_stage_model", "embedder", "image_proj_model", "first_stage_model")


class ToyUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.time_embed = nn.Linear(4, 4)
        self.input_blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
        self.out = nn.Linear(4, 4)

    def forward(self, x):
        x = self.time_embed(x)
        for block in self.input_blocks:
            x = block(x)
        return self.out(x)


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        for name in ENCODERS:
            setattr(self, name, nn.Linear(4, 4))
        self.model = nn.Module()
        self.model.diffusion_model = ToyUNet()
        self.register_buffer("alphas_cumprod", torch.linspace(1, 0, 10, dtype=torch.float32))


def _where(module):
    return {p.device.type for p in module.parameters()}


def _placement_of(model):
    where = {name: _where(getattr(model, name)) for name in ENCODERS}
    where["unet"] = _where(model.model.diffusion_model)
    return where


@pytest.mark.parametrize("mode", ["balanced", "low"])
def test_stage_hook_keeps_only_the_running_stage_on_the_device(mode):
    model = Toy()
    placement = apply_memory_mode(model, mode, "meta", torch.float16)
    assert model.alphas_cumprod.dtype == torch.float32  # the schedule stays float32
    assert next(model.embedder.parameters()).dtype == torch.float16
    assert all(w == {"cpu"} for w in _placement_of(model).values())
    expected = {"text": {"cond_stage_model"}, "image": {"embedder", "image_proj_model"},
                "vae_encode": {"first_stage_model"}, "decode": {"first_stage_model"}}
    for stage, names in expected.items():
        placement.stage_hook(stage)
        where = _placement_of(model)
        for name in ENCODERS:
            assert where[name] == ({"meta"} if name in names else {"cpu"}), (stage, name)
        assert where["unet"] == {"cpu"}
    placement.stage_hook("denoise")
    where = _placement_of(model)
    assert all(where[name] == {"cpu"} for name in ENCODERS)
    unet = model.model.diffusion_model
    assert _where(unet.time_embed) == {"meta"}  # the pipeline reads the device from the first parameter
    assert _where(unet.input_blocks) == ({"cpu"} if mode == "low" else {"meta"})
    placement.remove()
    assert all(w == {"cpu"} for w in _placement_of(model).values())


def test_low_streams_unet_blocks_one_at_a_time():
    model = Toy()
    placement = apply_memory_mode(model, "low", "meta", torch.float16)
    placement.stage_hook("denoise")
    unet = model.model.diffusion_model
    seen = []
    for i, block in enumerate(unet.input_blocks):
        block.register_forward_hook(
            lambda m, a, o, i=i: seen.append([_where(b) for b in unet.input_blocks]), prepend=True)
    unet(torch.zeros(1, 4, device="meta", dtype=torch.float16))
    assert len(seen) == 3
    for i, where in enumerate(seen):
        assert where[i] == {"meta"}
        assert all(w == {"cpu"} for j, w in enumerate(where) if j != i)
    assert _where(unet.input_blocks) == {"cpu"}  # all sent back after the forward
    assert placement.lean_decode and not placement.batch_cfg


def test_high_and_cpu_put_everything_in_one_place():
    model = Toy()
    placement = apply_memory_mode(model, "high", "meta", torch.float16)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert placement.batch_cfg and not placement.lean_decode
    placement.stage_hook("text")  # no-op
    assert {p.device.type for p in model.parameters()} == {"meta"}
    placement.remove()  # unloading gives the device back
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    model = Toy()
    apply_memory_mode(model, "low", "cpu", torch.float32)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
