import numpy as np
import pytest

from tooncrafter_studio.core.errors import Cancelled, InputError, ModelError, OutOfMemory
from tooncrafter_studio.core.progress import CancelToken
from tooncrafter_studio.engines.base import InterpolationRequest
from tooncrafter_studio.engines.tooncrafter import ToonCrafterEngine
from tooncrafter_studio.engines.tooncrafter import engine as engine_module

from .fakes import FakePipeline, draw, square_x


def _keys(w=512, h=320):
    return draw(0.2 * w, h, w), draw(0.8 * w, h, w)


def _request(times, w=512, h=320, **params):
    start, end = _keys(w, h)
    params.setdefault("steps", 4)
    params.setdefault("device", "cpu")
    return InterpolationRequest(start, end, list(times), params=params, seed=params.pop("seed", 5))


def test_frames_at_requested_times_at_source_resolution():
    fake = FakePipeline()
    engine = ToonCrafterEngine(backend=fake)
    times = [1 / 15, 0.3, 0.5, 11 / 15]
    result = engine.interpolate(_request(times, w=640, h=480))
    assert len(result.frames) == 4
    for t, frame in zip(times, result.frames):
        assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
        assert square_x(frame) == pytest.approx(640 * (0.2 + 0.6 * t), abs=6)
    assert len(fake.calls) == 1
    info = result.info
    assert info["engine"] == "tooncrafter" and info["seed"] == 5 and info["passes"] == 1
    assert info["params"]["steps"] == 4 and info["params"]["fit"] == "letterbox"


def test_crop_and_rgba_uint16_keys_keep_shape_depth_and_alpha():
    start, end = _keys(1024, 400)
    rgba = [np.dstack([k.astype(np.uint16) * 257, np.full(k.shape[:2], 65535, np.uint16)]) for k in (start, end)]
    request = InterpolationRequest(rgba[0], rgba[1], [0.5], params={"steps": 2, "device": "cpu", "fit": "crop"})
    (frame,) = ToonCrafterEngine(backend=FakePipeline()).interpolate(request).frames
    assert frame.shape == (400, 1024, 4) and frame.dtype == np.uint16
    assert (frame[..., 3] == 65535).all()


def test_progress_per_step_with_eta_and_stage_names():
    events = []
    ToonCrafterEngine(backend=FakePipeline()).interpolate(_request([0.5], steps=6), progress=events.append)
    steps = [e for e in events if e.stage == "denoise" and e.done > 0]
    assert [e.done for e in steps] == [1, 2, 3, 4, 5, 6]
    assert all(e.total == 6 for e in steps)
    assert steps[-1].eta_s is not None and steps[-1].eta_s >= 0
    assert "pass 1/1" in steps[0].message
    assert {e.stage for e in events} >= {"denoise", "finish"}


def test_cancel_lands_within_one_step():
    fake = FakePipeline()
    cancel = CancelToken()

    def progress(event):
        if event.stage == "denoise" and event.done == 3:
            cancel.cancel()

    with pytest.raises(Cancelled):
        ToonCrafterEngine(backend=fake).interpolate(_request([0.5], steps=50), progress, cancel)
    assert fake.steps_run == 3


def test_more_than_14_inbetweens_run_further_passes_from_generated_anchors():
    fake = FakePipeline()
    times = [(i + 1) / 25 for i in range(24)]
    result = ToonCrafterEngine(backend=fake).interpolate(_request(times, steps=1))
    assert result.info["passes"] == len(fake.calls) > 1
    assert result.info["pass_seeds"] == [5 + i for i in range(len(fake.calls))]
    # Sub-passes start and end at squares the first pass generated, not at the keys.
    for call in fake.calls[1:]:
        assert call["xa"] > fake.calls[0]["xa"] - 1 and call["xb"] < fake.calls[0]["xb"] + 1
        assert (call["xa"], call["xb"]) != (fake.calls[0]["xa"], fake.calls[0]["xb"])
    xs = [square_x(f) for f in result.frames]
    assert all(b > a + 2 for a, b in zip(xs, xs[1:]))  # moving every frame: no duplicates, no fades


def test_same_seed_same_frames_and_prompt_passed():
    fake = FakePipeline()
    engine = ToonCrafterEngine(backend=fake)
    a = engine.interpolate(_request([0.25, 0.5], prompt="a cat"))
    b = engine.interpolate(_request([0.25, 0.5], prompt="a cat"))
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    assert fake.calls[0]["prompt"] == "a cat" and fake.calls[0]["seed"] == 5


def test_colour_match_is_on_by_default_and_switchable():
    fake = FakePipeline(drift=60)
    on = ToonCrafterEngine(backend=fake).interpolate(_request([0.5])).frames[0]
    off = ToonCrafterEngine(backend=fake).interpolate(_request([0.5], colour_match=False)).frames[0]
    key_sky = _keys()[0][:50].reshape(-1, 3).mean(axis=0)
    assert np.abs(on[:50].reshape(-1, 3).mean(axis=0) - key_sky).sum() < np.abs(
        off[:50].reshape(-1, 3).mean(axis=0) - key_sky).sum()


def test_bad_params_are_clear():
    engine = ToonCrafterEngine(backend=FakePipeline())
    with pytest.raises(InputError, match="steps"):
        engine.interpolate(_request([0.5], steps=0))
    with pytest.raises(InputError, match="fit"):
        engine.interpolate(_request([0.5], fit="stretch"))
    with pytest.raises(InputError, match="Unknown ToonCrafter option"):
        engine.interpolate(_request([0.5], colour="yes"))


# --- probe ------------------------------------------------------------------------------------------


def test_probe_without_torch(monkeypatch):
    monkeypatch.setattr(engine_module, "_missing_packages", lambda: ["torch"])
    result = ToonCrafterEngine().probe()
    assert not result.available and "torch" in result.reason and "tooncrafter" in result.reason


def test_probe_without_cuda_refuses_unless_cpu(monkeypatch, tmp_path):
    from tooncrafter_studio.diffusion.run import memory

    monkeypatch.setattr(memory, "cuda_available", lambda: False)
    engine = ToonCrafterEngine()
    result = engine.probe()
    assert not result.available and "CUDA" in result.reason and "set the device to CPU" in result.reason and "--" not in result.reason
    engine.configure({"device": "cpu"})
    result = engine.probe()
    assert not result.available and "No ToonCrafter model was found" in result.reason
    assert "user data folder" in result.reason  # the places looked


def test_probe_cpu_with_model_warns_hours(monkeypatch, tmp_path):
    model = tmp_path / "model.ckpt"
    model.write_bytes(b"x" * 100)
    monkeypatch.setattr(engine_module, "_check_model_file", lambda path: None)
    engine = ToonCrafterEngine(device="cpu", model=str(model))
    result = engine.probe()
    assert result.available and "hours" in result.reason and str(model) in result.reason


def test_probe_reports_a_bad_model_file(monkeypatch, tmp_path):
    model = tmp_path / "model.ckpt"
    model.write_bytes(b"not a checkpoint")

    def bad(path):
        raise ModelError(f"{path} is truncated.")

    monkeypatch.setattr(engine_module, "_check_model_file", bad)
    result = ToonCrafterEngine(device="cpu", model=str(model)).probe()
    assert not result.available and "truncated" in result.reason


def test_probe_never_raises(monkeypatch):
    def boom():
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(engine_module, "_missing_packages", boom)
    result = ToonCrafterEngine().probe()
    assert not result.available and "driver exploded" in result.reason


def test_probe_cuda_too_little_memory(monkeypatch):
    from tooncrafter_studio.diffusion.run import memory

    monkeypatch.setattr(memory, "cuda_available", lambda: True)
    monkeypatch.setattr(memory, "free_vram_bytes", lambda device="cuda": (1 * memory.GiB, 4 * memory.GiB))
    result = ToonCrafterEngine(backend=FakePipeline()).probe()
    assert not result.available and "low memory mode" in result.reason


# --- out of memory in a run ----------------------------------------------------------------------


def test_engine_retries_once_in_lower_mode_after_oom(monkeypatch):
    from tooncrafter_studio.diffusion.run import memory

    monkeypatch.setattr(memory, "cuda_available", lambda: True)
    monkeypatch.setattr(memory, "free_vram_bytes", lambda device="cuda": (40 * memory.GiB, 48 * memory.GiB))
    monkeypatch.setattr(memory, "release_cached_memory", lambda: None)
    built = []

    class OOMBackend(FakePipeline):
        def __init__(self, mode):
            super().__init__()
            self.mode = mode

        def __call__(self, *a, **k):
            if self.mode == "high":
                raise RuntimeError("CUDA out of memory. Tried to allocate 3.00 GiB")
            return super().__call__(*a, **k)

    def factory(settings, mode):
        built.append(mode)
        return OOMBackend(mode)

    engine = ToonCrafterEngine(backend_factory=factory, model=object())
    result = engine.interpolate(_request([0.5], device="cuda"))
    assert built == ["high", "balanced"]
    assert result.info["memory_mode"] == "balanced"

    def always_oom(settings, mode):
        built.append(mode)
        return OOMBackend("high")

    built.clear()
    engine = ToonCrafterEngine(backend_factory=always_oom, model=object())
    with pytest.raises(OutOfMemory, match="balanced memory mode"):
        engine.interpolate(_request([0.5], device="cuda"))
    assert built == ["high", "balanced"]


def test_probe_runs_the_real_checkpoint_check_on_a_wrong_file(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "sd15.safetensors"
    safetensors_torch.save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3)}, str(path))
    engine = ToonCrafterEngine(device="cpu", model=str(path))
    result = engine.probe()
    assert not result.available and "sd15.safetensors" in result.reason
    assert engine.identity()["model"]["name"] == "sd15.safetensors"


def test_importing_the_engine_and_doctor_does_not_load_torch():
    import subprocess
    import sys

    code = ("import sys; import tooncrafter_studio.engines.tooncrafter, tooncrafter_studio.cli.doctor_cmds, "
            "tooncrafter_studio.diffusion.run.memory as m; m.choose_mode('auto', 8 * m.GiB); "
            "ToonCrafter = tooncrafter_studio.engines.tooncrafter.ToonCrafterEngine; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_changing_compile_or_attention_gives_a_new_backend_for_the_same_model():
    """The backend depends on torch.compile and the SDPA kernel: changing only those must not keep
    the old placement (the model itself is kept)."""
    from tooncrafter_studio.engines.tooncrafter.engine import BackendKey, parse_settings

    plain = parse_settings({"device": "cpu"})
    compiled = parse_settings({"device": "cpu", "compile": True})
    math_kernel = parse_settings({"device": "cpu", "attention": "math"})
    keys = {BackendKey.of(s, "high") for s in (plain, compiled, math_kernel)}
    assert len(keys) == 3
    assert all(BackendKey.of(plain).same_model(BackendKey.of(s)) for s in (compiled, math_kernel))


def test_release_gpu_closes_the_placed_backend_and_keeps_the_model(monkeypatch):
    """Risk 8: after a job the worker kept the weights on the GPU with no way to give them back."""
    from tooncrafter_studio.diffusion.run import memory

    monkeypatch.setattr(memory, "cuda_available", lambda: True)
    monkeypatch.setattr(memory, "free_vram_bytes", lambda device="cuda": (40 * memory.GiB, 48 * memory.GiB))
    emptied = []
    monkeypatch.setattr(memory, "release_cached_memory", lambda: emptied.append(1))
    closed, built = [], []

    class Placed(FakePipeline):
        def close(self):
            closed.append(1)

    model = object()
    engine = ToonCrafterEngine(backend_factory=lambda settings, mode: built.append(mode) or Placed(), model=model)
    engine.interpolate(_request([0.5], device="cuda"))
    assert closed == [] and built == ["high"]
    engine.release_gpu()
    assert closed == [1] and emptied  # the weights and the allocator's cache went back
    engine.interpolate(_request([0.5], device="cuda"))
    assert built == ["high", "high"]  # placed again from the model it kept


def test_engine_cache_releases_every_kept_engine():
    from tooncrafter_studio.pipeline.engines import EngineCache

    cache = EngineCache()
    released = []

    class Kept:
        id = "kept"

        def release_gpu(self):
            released.append(self)

    engines = [Kept(), Kept()]
    cache._engines = {f"e{i}": (e, ()) for i, e in enumerate(engines)}
    cache.release_gpu()
    assert released == engines
