"""The DDIM sampler with the reduced model on the CPU (float32, weights by the fill rule):
seconds per DDIM step (one batched cond+uncond UNet call plus the update) at the vectors' latent
(16x8x16) and at the real latent (16x40x64), batched and separate CFG; and the cost of cancel:
the time from `CancelToken.cancel()` (from another thread, mid-step) to `generate` returning, and
proof that nothing is decoded afterwards.
"""

from __future__ import annotations

import statistics
import threading
import time


def _seconds_per_step(model, latent_hw: tuple[int, int], steps: int, batch_cfg: bool) -> float:
    import torch

    from tooncrafter_studio.diffusion.nets.schedule import ddim_tables
    from tooncrafter_studio.diffusion.sampling.ddim import generator_noise, sample_ddim

    h, w = latent_hw
    cfg = model.config
    ctx = torch.randn(1, cfg.context_tokens, cfg.unet.context_dim, generator=torch.Generator().manual_seed(0))
    c_concat = torch.zeros(1, 4, cfg.frames, h, w)
    fs = torch.tensor([10])

    def unet(x, t, context):
        b = x.shape[0]
        return model.model(x, t, c_concat.expand(b, -1, -1, -1, -1), context, fs.expand(b))

    times: list[float] = []
    last = [time.perf_counter()]

    def tick(done, total, preview):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    x_T = torch.randn(1, 4, cfg.frames, h, w, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        last[0] = time.perf_counter()
        sample_ddim(unet, x_T, ddim_tables(None, steps, 1.0), ctx, torch.zeros_like(ctx),
                    noise=generator_noise(torch.Generator().manual_seed(2)), callback=tick, batch_cfg=batch_cfg)
    return statistics.median(times)


def _cancel_latency(model, trials: int = 3) -> list[tuple[float, float, bool]]:
    """(seconds from cancel() to return, the step time, whether decode ran) per trial; cancel is
    requested half-way through the second step."""
    import numpy as np
    import torch

    from tooncrafter_studio.core.errors import Cancelled
    from tooncrafter_studio.core.progress import CancelToken
    from tooncrafter_studio.diffusion.run.pipeline import ToonCrafterPipeline

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    results = []
    for _ in range(trials):
        stages: list[str] = []
        pipe = ToonCrafterPipeline(model, stage_hook=stages.append)
        token = CancelToken()
        step_started = threading.Event()
        step_times: list[float] = []
        marks = [0.0]

        def callback(event, step_started=step_started, step_times=step_times, marks=marks):
            if event.stage == "denoise":
                now = time.perf_counter()
                if event.done:
                    step_times.append(now - marks[0])
                marks[0] = now
                if event.done == 1:
                    step_started.set()

        outcome: dict[str, float] = {}

        def work(pipe=pipe, token=token, callback=callback, outcome=outcome):
            try:
                with torch.inference_mode():
                    pipe(a, b, steps=6, seed=0, callback=callback, cancel=token)
            except Cancelled:
                outcome["returned"] = time.perf_counter()

        thread = threading.Thread(target=work)
        thread.start()
        step_started.wait()
        time.sleep(step_times[0] / 2)
        requested = time.perf_counter()
        token.cancel()
        thread.join()
        results.append((outcome["returned"] - requested, step_times[0], "decode" in stages))
    return results


def run() -> None:
    import torch

    from tooncrafter_studio.diffusion.checks.verify_sampler import reduced_filled_model

    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 CPU, reduced model (fill rule)")
    start = time.perf_counter()
    model = reduced_filled_model()
    print(f"build + fill reduced model: {time.perf_counter() - start:.1f} s")
    for hw, steps in (((8, 16), 4), ((40, 64), 2)):
        for batch_cfg in (True, False):
            seconds = _seconds_per_step(model, hw, steps, batch_cfg)
            mode = "batched cond+uncond" if batch_cfg else "separate cond, uncond"
            print(f"DDIM step, latent 16x{hw[0]}x{hw[1]}, {mode}: {seconds:.2f} s/step (median of {steps})")
    results = _cancel_latency(model)
    for latency, step, decoded in results:
        print(f"cancel mid-step: returned {latency:.2f} s after the request (step takes {step:.2f} s; "
              f"{latency / step:.2f} of a step); decode ran: {decoded}")
    worst = max(r[0] / r[1] for r in results)
    print(f"cancel cost: at most {worst:.2f} of one DDIM step (bound: 1 step); never decodes after cancel")
