"""Memory-mode placement on a toy model; the `meta` device stands in for the GPU."""

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tooncrafter_studio.diffusion.memory import apply_memory_mode  # noqa: E402


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
        self.cond_stage_model = nn.Linear(4, 4)
        self.embedder = nn.Linear(4, 4)
        self.image_proj_model = nn.Linear(4, 4)
        self.first_stage_model = nn.Linear(4, 4)
        self.model = nn.Module()
        self.model.diffusion_model = ToyUNet()
        self.register_buffer("alphas_cumprod", torch.linspace(1, 0, 10, dtype=torch.float32))


def _where(module):
    return {p.device.type for p in module.parameters()}


def _spy(model, log):
    names = ["cond_stage_model", "embedder", "image_proj_model", "first_stage_model"]
    for name in names:
        getattr(model, name).register_forward_hook(
            lambda m, a, o, n=name: log.append((n, {k: _where(getattr(model, k)) for k in names}))
        )
    unet = model.model.diffusion_model
    for i, block in enumerate(unet.input_blocks):
        block.register_forward_hook(
            lambda m, a, o, i=i: log.append((f"block{i}", [_where(b) for b in unet.input_blocks])),
            prepend=True,  # before the hook that sends the block back
        )


def _run(model):
    x = torch.zeros(1, 4, device="meta", dtype=torch.float16)
    for name in ("cond_stage_model", "embedder", "image_proj_model", "first_stage_model"):
        getattr(model, name)(x)
    model.model.diffusion_model(x)
    model.first_stage_model(x)


def test_balanced_keeps_only_the_running_component_on_the_device():
    model = Toy()
    placement = apply_memory_mode(model, "balanced", "meta", torch.float16)
    assert model.alphas_cumprod.dtype == torch.float32  # schedule stays float32
    assert _where(model.cond_stage_model) == {"cpu"}
    log = []
    _spy(model, log)
    _run(model)
    for name, where in [entry for entry in log if not entry[0].startswith("block")]:
        assert where[name] == {"meta"}
        assert all(v == {"cpu"} for k, v in where.items() if k != name), (name, where)
    # While the UNet ran, the encoders were back on the CPU.
    blocks = [entry for entry in log if entry[0].startswith("block")]
    assert blocks and all(w == [{"meta"}] * 3 for _, w in blocks)
    assert next(model.cond_stage_model.parameters()).dtype == torch.float16
    placement.remove()
    assert all(_where(getattr(model, n)) == {"cpu"} for n in ("cond_stage_model", "first_stage_model"))


def test_low_streams_unet_blocks_one_at_a_time():
    model = Toy()
    apply_memory_mode(model, "low", "meta", torch.float16)
    log = []
    _spy(model, log)
    _run(model)
    blocks = [w for name, w in log if name.startswith("block")]
    assert len(blocks) == 3
    for i, where in enumerate(blocks):
        assert where[i] == {"meta"}
        assert all(w == {"cpu"} for j, w in enumerate(where) if j != i)
    assert _where(model.model.diffusion_model) == {"cpu"}  # all sent back after the forward


def test_high_and_cpu_put_everything_in_one_place():
    model = Toy()
    apply_memory_mode(model, "high", "meta", torch.float16)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    model = Toy()
    apply_memory_mode(model, "low", "cpu", torch.float32)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
