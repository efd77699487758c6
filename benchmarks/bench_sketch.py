"""What sketch guidance costs per denoising step on the CPU: one sketch-encoder pass beside one UNet
pass, both at reduced widths (the vectors' reduced model, model_channels 32) but at the real geometry
(16 frames, latent 40x64, hint 320x512, so the encoder's full-resolution hint block is included), B 1.
The spec's estimate for the full model is 30-40 % extra UNet compute per step; the full encoder
alone measured about 1.7 s per frame here against 5.7 s per frame for the full UNet (sketch-spec 1.6).
Prints the times and the ratio; fill-rule weights, float32.
"""

from __future__ import annotations

import time


def _best(fn, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run() -> None:
    import torch

    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.sketch_encoder import SketchEncoderConfig, build_sketch_encoder
    from tooncrafter_studio.diffusion.nets.unet import UNet3D, UNetConfig
    from tooncrafter_studio.diffusion.sampling.sketch_guidance import SketchGuidance

    with torch.device("meta"):
        unet = UNet3D(UNetConfig.reduced())
    unet = unet.to_empty(device="cpu").eval()
    fill_module(unet, "model.diffusion_model.")
    encoder = build_sketch_encoder(SketchEncoderConfig.reduced(), device="cpu")
    fill_module(encoder)
    g = torch.Generator().manual_seed(0)
    frames, h, w = 16, 40, 64
    x = torch.randn(1, 8, frames, h, w, generator=g)
    context = torch.randn(1, 77 + 16 * frames, 64, generator=g)
    t = torch.tensor([500])
    hints = (torch.rand(frames, 1, 8 * h, 8 * w, generator=g) > 0.97).float()
    guidance = SketchGuidance(encoder, hints, 0.6, "text")
    with torch.inference_mode():
        plain = _best(lambda: unet(x, t, context))
        enc = _best(lambda: guidance.residuals(x[:, :4], t, context))
        residuals = guidance.residuals(x[:, :4], t, context)
        both = _best(lambda: unet(x, t, context, control=[r.clone() for r in residuals]))
    print(f"reduced UNet pass (16 frames, 40x64 latent): {plain:.2f} s")
    print(f"reduced sketch encoder pass (hint 320x512):   {enc:.2f} s  = {enc / plain:.2f} x the UNet pass")
    print(f"UNet pass with the 13 residuals added:         {both:.2f} s  ({both / plain:.2f} x)")
    print(f"per step with sketches: {(enc + both) / plain:.2f} x an unguided step "
          "(reduced widths: the hint block weighs more here than in the full model)")
