"""The DDIM loop reproduces every intermediate of the original (vectors/ddim_reduced.npz) when the
stored network outputs and noises are replayed, with batched or separate CFG calls; it never
produces NaN at eta 1; randomness is local; the callback can cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.core.errors import Cancelled  # noqa: E402
from tooncrafter_studio.diffusion.nets.schedule import ddim_tables, schedule_buffers  # noqa: E402
from tooncrafter_studio.diffusion.sampling.ddim import (  # noqa: E402
    generator_noise,
    guided_v,
    replay_noise,
    sample_ddim,
)

VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "vectors"
MULTI_STEP_TOL = 1e-3  # vectors/README §4 for multi-step results


def _ddim():
    path = VECTORS / "ddim_reduced.npz"
    if not path.exists():
        pytest.skip("ddim_reduced.npz not available")
    return np.load(path)


def _rel(ours: torch.Tensor, ref: np.ndarray) -> float:
    return float(np.abs(ours.double().numpy() - ref).max() / np.abs(ref).max())


class ReplayModel:
    """Returns the stored UNet outputs of each step, recognising cond/uncond by the context."""

    def __init__(self, ref, prefix: str, cond: torch.Tensor):
        self.ref, self.prefix, self.cond = ref, prefix, cond
        self.step = 0
        self.calls: list[int] = []
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x, t, context):
        self.calls.append(x.shape[0])
        self.inputs.append(x[:1].clone())
        vc = torch.from_numpy(self.ref[f"{self.prefix}step{self.step}/v_cond"])
        vu = torch.from_numpy(self.ref[f"{self.prefix}step{self.step}/v_uncond"])
        assert t.dtype == torch.long and int(t[0]) == int(self.ref[f"{self.prefix}timesteps"][self.step])
        if x.shape[0] == 2:
            assert torch.equal(context[:1], self.cond)
            self.step += 1
            return torch.cat([vc, vu])
        if torch.equal(context, self.cond):
            return vc
        self.step += 1
        return vu


@pytest.mark.parametrize("eta", [0, 1])
@pytest.mark.parametrize("batch_cfg", [True, False])
def test_replayed_sampler_matches_every_step(eta, batch_cfg):
    ref = _ddim()
    prefix = f"eta{eta}/"
    cond = torch.from_numpy(ref["context_cond"])
    uncond = torch.from_numpy(ref["context_uncond"])
    model = ReplayModel(ref, prefix, cond)
    steps = len(ref[prefix + "timesteps"])
    noises = [torch.from_numpy(ref[f"{prefix}step{k}/noise"]) for k in range(steps)]
    trace = []
    out = sample_ddim(model, torch.from_numpy(ref["x_T"]), ddim_tables(schedule_buffers(), steps, eta), cond, uncond,
                      cfg_scale=7.5, guidance_rescale=0.7, noise=replay_noise(noises), batch_cfg=batch_cfg, trace=trace)
    assert model.calls == ([2] * steps if batch_cfg else [1, 1] * steps)
    assert [tr.timestep for tr in trace] == ref[prefix + "timesteps"].tolist()
    assert [tr.index for tr in trace] == ref[prefix + "index"].tolist()
    for k, tr in enumerate(trace):
        for name in ("x_in", "pred_x0", "x_prev", "noise"):
            assert _rel(getattr(tr, name), ref[f"{prefix}step{k}/{name}"]) <= MULTI_STEP_TOL, (k, name)
    rel = _rel(out, ref[prefix + "samples"])
    assert rel <= MULTI_STEP_TOL
    # in fact far tighter: eta 0 is exact and eta 1 within a few float32 ulps
    assert rel <= (1e-6 if eta == 0 else 1e-5)


def test_a_wrong_formula_would_fail_the_replay():
    """Guard that the replay test can fail: skipping guidance rescale moves the result far."""
    ref = _ddim()
    cond = torch.from_numpy(ref["context_cond"])
    noises = [torch.from_numpy(ref[f"eta1/step{k}/noise"]) for k in range(5)]
    out = sample_ddim(ReplayModel(ref, "eta1/", cond), torch.from_numpy(ref["x_T"]), ddim_tables(None, 5, 1.0),
                      cond, torch.from_numpy(ref["context_uncond"]), guidance_rescale=0.0,
                      noise=replay_noise(noises))
    assert _rel(out, ref["eta1/samples"]) > 1e-2


def _linear_model(x, t, context):
    # a cheap deterministic stand-in for the UNet whose output depends on all inputs
    return 0.5 * x + 0.01 * context.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1) + t.view(-1, 1, 1, 1, 1) * 1e-4


@pytest.mark.parametrize("steps", [7, 11, 14, 15, 20, 25, 33, 50, 60])
def test_no_nan_at_eta_1_for_the_step_counts_that_break_the_original(steps):
    x = torch.randn((1, 4, 4, 4, 4), generator=torch.Generator().manual_seed(0))
    cond, uncond = torch.ones(1, 3, 8), torch.zeros(1, 3, 8)
    out = sample_ddim(_linear_model, x, ddim_tables(None, steps, 1.0), cond, uncond,
                      noise=generator_noise(torch.Generator().manual_seed(1)))
    assert torch.isfinite(out).all()


def test_guidance_rescale_uses_the_unbiased_std():
    g = torch.Generator().manual_seed(3)
    vc, vu = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    v = vu + 7.5 * (vc - vu)
    ratio = vc.std(dim=(1, 2), unbiased=True, keepdim=True) / v.std(dim=(1, 2), unbiased=True, keepdim=True)
    expected = 0.7 * v * ratio + 0.3 * v
    torch.testing.assert_close(guided_v(vc, vu, 7.5, 0.7), expected)
    biased = vc.std(dim=(1, 2), unbiased=False, keepdim=True) / v.std(dim=(1, 2), unbiased=False, keepdim=True)
    assert not torch.allclose(guided_v(vc, vu, 7.5, 0.7), 0.7 * v * biased + 0.3 * v, rtol=0, atol=1e-7)
    torch.testing.assert_close(guided_v(vc, vu, 1.0, 0.0), vc)


def test_noise_is_drawn_every_step_even_at_eta_0_and_seeds_are_local():
    x = torch.zeros((1, 4, 2, 2, 2))
    draws = []

    def counting(shape):
        draws.append(tuple(shape))
        return torch.zeros(shape)

    sample_ddim(_linear_model, x, ddim_tables(None, 6, 0.0), torch.ones(1, 3, 8), torch.zeros(1, 3, 8), noise=counting)
    assert draws == [(1, 4, 2, 2, 2)] * 6

    torch.manual_seed(0)
    before = torch.random.get_rng_state()

    def run(seed):
        return sample_ddim(_linear_model, torch.ones((1, 4, 2, 2, 2)), ddim_tables(None, 4, 1.0), torch.ones(1, 3, 8),
                           torch.zeros(1, 3, 8), noise=generator_noise(torch.Generator().manual_seed(seed)))

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.random.get_rng_state(), before)  # global generator untouched


def test_callback_counts_steps_and_can_cancel():
    seen = []

    def callback(done, total, preview):
        seen.append((done, total, tuple(preview.shape)))
        if done == 2:
            raise Cancelled()

    calls = []

    def model(x, t, c):
        calls.append(int(t[0]))
        return _linear_model(x, t, c)

    with pytest.raises(Cancelled):
        sample_ddim(model, torch.zeros((1, 4, 2, 2, 2)), ddim_tables(None, 5, 1.0), torch.ones(1, 3, 8),
                    torch.zeros(1, 3, 8), noise=generator_noise(torch.Generator().manual_seed(0)), callback=callback)
    assert seen == [(1, 5, (1, 4, 2, 2, 2)), (2, 5, (1, 4, 2, 2, 2))]
    assert calls == [999, 799]  # no network call after the cancel


def test_cfg_1_or_no_uncond_makes_one_call_per_step():
    calls = []

    def model(x, t, c):
        calls.append(x.shape[0])
        return _linear_model(x, t, c)

    sample_ddim(model, torch.zeros((1, 4, 2, 2, 2)), ddim_tables(None, 3, 0.0), torch.ones(1, 3, 8), None,
                noise=generator_noise(torch.Generator().manual_seed(0)))
    sample_ddim(model, torch.zeros((1, 4, 2, 2, 2)), ddim_tables(None, 3, 0.0), torch.ones(1, 3, 8),
                torch.zeros(1, 3, 8), cfg_scale=1.0, noise=generator_noise(torch.Generator().manual_seed(0)))
    assert calls == [1] * 6


def test_replay_noise_refuses_wrong_shapes_and_running_out():
    source = replay_noise([torch.zeros(2, 2)])
    with pytest.raises(RuntimeError, match="shape"):
        source((3, 3))
    source = replay_noise([torch.zeros(2, 2)])
    source((2, 2))
    with pytest.raises(RuntimeError, match="more draws"):
        source((2, 2))
