"""The engine's own run on a simulated GPU: what `doctor --estimate-vram` and the tests use.

`dry_run()` calls `ToonCrafterEngine.interpolate` with `device="cuda"` (or "mps") and an injected
model whose weights are fake tensors, inside `diffusion.checks.dryrun`'s session: the engine chooses the
memory mode from the simulated card, places the model, runs the pipeline's stages with their hooks,
the lean decode and the streamed blocks, retries after an out-of-memory error, and returns its
frames, exactly as for a user. The report says how many bytes were live on the device at the
peak (overall and per pipeline stage), which operators broke a device rule, and where every weight
was after the run and after `unload()`.

Torch is reached only through `diffusion`, when a dry run starts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.progress import CancelToken, ProgressCallback, ProgressEvent
from ..engines.base import InterpolationRequest
from ..engines.tooncrafter.engine import ToonCrafterEngine

FULL_SIZE = (320, 512)  # the 512 model's frame, height x width
STAGES = ("text", "image", "vae_encode", "denoise", "decode")


@dataclass
class DryRunReport:
    device: str
    card: str
    requested_mode: str
    dtype: str
    memory_mode: str | None = None  # the mode the run finished in (after a retry, the lower one)
    peak_bytes: int = 0
    stage_peaks: dict[str, int] = field(default_factory=dict)
    ops: int = 0
    stage_ops: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    dtypes_on_device: dict[str, int] = field(default_factory=dict)
    misplaced: list[str] = field(default_factory=list)  # weights not where the mode puts them
    live_after_unload: int = 0  # bytes still on the device after `engine.unload()`
    unet_batches: list[int] = field(default_factory=list)  # batch size of every UNet call
    modes_tried: list[str] = field(default_factory=list)
    live_at_retry: list[int] = field(default_factory=list)  # device bytes when each OOM retry starts
    passes: int = 0
    frames: list[np.ndarray] = field(default_factory=list)
    error: BaseException | None = None  # what the run raised (cancel, out of memory), if anything
    cpu_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The dry run's figures beside the program's table: `peak_bytes` traced now, `table_peak_bytes`
        what the mode choice uses, `plan_bytes` that with the overhead allowance, and
        `fp32_redecode_plan_bytes` what a decode redone in float32 after an overflow needs."""
        from ..diffusion.run import memory

        mode = self.memory_mode or self.requested_mode
        return {"mode": mode, "dtype": self.dtype, "device": self.device, "card": self.card,
                "peak_bytes": self.peak_bytes, "stages": dict(self.stage_peaks),
                "table_peak_bytes": memory.table_peak_bytes(mode, self.dtype),
                "plan_bytes": memory.estimate_peak_bytes(mode, self.dtype),
                "fp32_redecode_plan_bytes": memory.redecode_plan_bytes(mode, self.dtype)}


def _rgb(height: int, width: int, shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(shift)
    return rng.integers(0, 255, (height, width, 3), dtype=np.uint8)


def _component_devices(model: Any) -> dict[str, set[str]]:
    """Device types of each placement unit's weights ("model.diffusion_model" split into its
    resident layers and its streamed blocks)."""
    from ..diffusion.run import memory

    out: dict[str, set[str]] = {}
    for name in memory.COMPONENTS:
        module = memory._submodule(model, name)
        if module is None:
            continue
        if name == "model.diffusion_model":
            resident = [getattr(module, n) for n in memory.UNET_RESIDENT if getattr(module, n, None) is not None]
            streamed = [b for b in memory._blocks(module) if not any(b is r for r in resident)]
            out["unet.resident"] = {p.device.type for m in resident for p in m.parameters()}
            out["unet.blocks"] = {p.device.type for m in streamed for p in m.parameters()}
        else:
            out[name] = {t.device.type for t in (*module.parameters(), *module.buffers())}
    out["schedule"] = {b.device.type for b in model._buffers.values() if b is not None}
    return out


def expected_devices(mode: str, last_stage: str | None, device: str) -> dict[str, str]:
    """Where a memory mode keeps each unit after the pipeline ran up to `last_stage` (None: not placed)."""
    from ..diffusion.run import memory

    kind = device.split(":")[0]
    units = ["cond_stage_model", "embedder", "image_proj_model", "first_stage_model", "unet.resident", "unet.blocks"]
    if last_stage is None:
        return {**{u: "cpu" for u in units}, "schedule": "cpu"}
    if mode == "high":
        return {**{u: kind for u in units}, "schedule": "cpu"}
    running = set(memory.STAGE_COMPONENTS.get(last_stage, ()))
    where = {u: kind if u in running else "cpu" for u in units[:4]}
    unet_running = "model.diffusion_model" in running
    where["unet.resident"] = kind if unet_running else "cpu"
    where["unet.blocks"] = kind if (unet_running and mode == "balanced") else "cpu"
    where["schedule"] = "cpu"
    return where


def misplaced_weights(model: Any, mode: str, last_stage: str | None, device: str) -> list[str]:
    found = _component_devices(model)
    wanted = expected_devices(mode, last_stage, device)
    return [f"{unit}: on {', '.join(sorted(found[unit]))}, expected on {wanted[unit]} ({mode} mode, after "
            f"{last_stage or 'unload'})"
            for unit in wanted if unit in found and found[unit] and found[unit] != {wanted[unit]}]


@contextlib.contextmanager
def _failing_transfers(state: dict[str, Any], modes: Sequence[str], error: Callable[[], BaseException]
                       ) -> Iterator[None]:
    """The first weight transfer to the device in each of `modes` fails half-way through its tensors."""
    from types import SimpleNamespace
    from unittest import mock

    from ..diffusion.run import memory

    original = memory._Offloaded.load

    class _Refused:
        def detach(self) -> _Refused:
            return self

        def to(self, *_a: Any, **_k: Any) -> Any:
            raise error()

    def load(unit: Any) -> None:
        mode = state.get("mode")
        if unit.on_device or mode not in modes or mode in state["failed"] or len(unit._entries) < 2:
            return original(unit)
        state["failed"].add(mode)
        half = len(unit._entries) // 2
        sentinel = (SimpleNamespace(_parameters={}, _buffers={}), "refused", False, _Refused())
        entries = unit._entries
        unit._entries = [*entries[:half], sentinel, *entries[half:]]
        try:
            original(unit)
        finally:
            unit._entries = entries

    with mock.patch.object(memory._Offloaded, "load", load):
        yield


@contextlib.contextmanager
def _overflowing_decode() -> Iterator[None]:
    """The first decode's finite check says NaN: the float32 redo runs, as after an fp16 overflow."""
    from unittest import mock

    from ..diffusion.run import pipeline

    original = pipeline._all_finite
    calls = {"n": 0}

    def all_finite(tensor: Any) -> bool:
        calls["n"] += 1
        return calls["n"] > 1 and original(tensor)

    with mock.patch.object(pipeline, "_all_finite", all_finite):
        yield


@contextlib.contextmanager
def _watch_placement(report: DryRunReport, recorder: Any, state: dict[str, Any]) -> Iterator[None]:
    """Name the recorder's stage after each pipeline stage hook (every mode calls it) and note the
    mode the model is placed in."""
    from unittest import mock

    from ..diffusion.run import memory

    original = memory.Placement.stage_hook

    def stage_hook(placement: Any, stage: str) -> None:
        if placement.mode != state.get("mode"):
            state["mode"] = placement.mode
            report.modes_tried.append(placement.mode)
        state["stage"] = stage
        recorder.set_stage(stage)
        original(placement, stage)

    original_apply = memory.apply_memory_mode

    def apply_memory_mode(model: Any, mode: str, *args: Any, **kwargs: Any) -> Any:
        if mode != state.get("mode"):  # the high mode moves its weights here, before any stage
            state["mode"] = mode
            report.modes_tried.append(mode)
        return original_apply(model, mode, *args, **kwargs)

    with mock.patch.object(memory.Placement, "stage_hook", stage_hook), \
            mock.patch.object(memory, "apply_memory_mode", apply_memory_mode):
        yield


def dry_run(
    mode: str = "balanced",
    dtype: str = "fp16",
    *,
    device: str = "cuda",
    card: Any = None,
    config: Any = None,
    size: tuple[int, int] = FULL_SIZE,
    steps: int = 1,
    times: Sequence[float] = (0.5,),
    oom_in: Sequence[str] = (),
    oom_at: str = "unet",
    overflow_decode: bool = False,
    cancel_after_steps: int | None = None,
    progress: ProgressCallback | None = None,
    model_hook: Callable[[Any], Any] | None = None,
) -> DryRunReport:
    """Run one interpolation through the engine on a simulated `device` and report what it did.

    `config` None: the full 512 model; `size` the keys' (height, width) (the model frame by
    default, so fitting is the identity). `card`: a `diffusion.checks.dryrun.SimulatedCard` or a key of
    its CARDS ("8gb", "12gb", "24gb", "80gb", "mac16gb"). `oom_in`: memory modes in which the run fails once
    with `torch.cuda.OutOfMemoryError`, at `oom_at`: "unet" (in its middle block), "transfer" (half-way
    through a weight transfer to the device), "encode" (the VAE encoder) or "decode" (the VAE decoder).
    `overflow_decode`: the half-precision decode reports NaN once, so the float32 redo runs (and is
    measured). `cancel_after_steps`: cancel after that
    many denoising steps. `model_hook(model)` may add hooks before the run and return their handles
    (removed after it: the fake model is kept for the next dry run). What the run raised
    (Cancelled, OutOfMemory) is kept in `report.error`, not raised.
    """
    from ..diffusion.checks import dryrun
    from ..diffusion.nets.config import ToonCrafterConfig

    cfg = config or ToonCrafterConfig.default()
    card = dryrun.CARDS[card or "24gb"] if card is None or isinstance(card, str) else card
    report = DryRunReport(device, card.name, mode, dtype)
    height, width = size
    start_cpu = time.process_time()
    with dryrun.dry_run_session(device, card) as session, contextlib.ExitStack() as hooks:
        recorder = session.recorder
        model = dryrun.fake_model(cfg)
        state: dict[str, Any] = {"failed": set()}
        unet = model.model.diffusion_model

        def count_batch(_module: Any, args: Any) -> None:
            report.unet_batches.append(int(args[0].shape[0]))

        def out_of_memory(_module: Any, _args: Any) -> None:
            if state.get("mode") in oom_in and state["mode"] not in state["failed"]:
                state["failed"].add(state["mode"])
                raise dryrun.simulated_out_of_memory(recorder.live, card)

        hooks.callback(unet.register_forward_pre_hook(count_batch).remove)
        if oom_at == "transfer":
            hooks.enter_context(_failing_transfers(state, oom_in, lambda: dryrun.simulated_out_of_memory(
                recorder.live, card)))
        else:
            # unet: inside the middle block's first layer (in the low mode its weights have just been
            # streamed in); encode / decode: the VAE encoder's or decoder's first layer
            vae = model.first_stage_model
            first_layer = {"unet": lambda: next(iter(unet.middle_block.children())),
                           "encode": lambda: vae.encoder, "decode": lambda: vae.decoder}[oom_at]()
            for leaf in first_layer.modules():
                if leaf is not first_layer and not any(True for _ in leaf.children()):
                    hooks.callback(leaf.register_forward_pre_hook(out_of_memory).remove)
        if overflow_decode:
            hooks.enter_context(_overflowing_decode())
        if model_hook is not None:
            for handle in model_hook(model) or ():
                hooks.callback(handle.remove)
        engine = ToonCrafterEngine(model=model)
        cancel = CancelToken()

        def on_progress(event: ProgressEvent) -> None:
            if progress is not None:
                progress(event)
            if event.stage == "load" and "retrying" in event.message:
                report.live_at_retry.append(recorder.live)
            if cancel_after_steps is not None and event.stage == "denoise" and event.done >= cancel_after_steps:
                cancel.cancel()

        params = {"steps": steps, "device": device, "memory": mode, "dtype": dtype, "prompt": "a dry run"}
        request = InterpolationRequest(_rgb(height, width), _rgb(height, width, 1), list(times), params=params,
                                       seed=11)
        with _watch_placement(report, recorder, state):
            try:
                result = engine.interpolate(request, on_progress, cancel)
                report.frames = result.frames
                report.passes = int(result.info["passes"])
                report.memory_mode = str(result.info["memory_mode"])
            except Exception as exc:  # kept for the caller: a dry run reports, the test decides
                report.error = exc.with_traceback(None)  # (its frames would hold device tensors)
        report.peak_bytes = recorder.peak
        report.stage_peaks = {k: v for k, v in recorder.stage_peaks.items() if k in STAGES}
        if engine._backend is not None:
            report.misplaced = misplaced_weights(model, state["mode"], state.get("stage"), device)
        engine.unload()
        report.misplaced += misplaced_weights(model, "high", None, device)  # (unplaced: all on the CPU)
        report.live_after_unload = recorder.live
        report.ops = recorder.ops
        report.stage_ops = dict(recorder.stage_ops)
        report.violations = [str(v) for v in recorder.violations]
        report.dtypes_on_device = dict(recorder.dtypes_on_device)
    report.cpu_seconds = time.process_time() - start_cpu
    return report


def dry_run_config(size: str = "full") -> Any:
    """The model configuration of a dry run. "full": the 512 model. "reduced": the reduced model
    of the reference vectors (narrow layers, the full frame). "tiny": the reduced model with one
    res-block per level, two UNet levels and a 64x64 frame: every kind of layer, stage and memory
    path of the engine at a few percent of the operators, for the test matrix."""
    import dataclasses

    from ..diffusion.nets.config import ToonCrafterConfig

    if size == "full":
        return ToonCrafterConfig.default()
    reduced = ToonCrafterConfig.reduced()
    if size == "reduced":
        return reduced
    if size != "tiny":
        raise ValueError(f"unknown dry-run model size {size!r}")
    return dataclasses.replace(
        reduced,
        unet=dataclasses.replace(reduced.unet, channel_mult=(1, 2), num_res_blocks=1),
        autoencoder=dataclasses.replace(reduced.autoencoder, num_res_blocks=1),
        latent_size=(8, 8),
    )


__all__ = ["DryRunReport", "dry_run", "dry_run_config", "expected_devices", "misplaced_weights", "FULL_SIZE",
           "STAGES"]
