"""Sketch guidance in the denoiser (sketch-spec §1.3, §1.6): the encoder's residuals join the UNet.

`SketchGuidance` is what a generation needs: the encoder, one hint per output frame (blank pages
where the animator drew nothing: the encoder still runs for them, as the paper trains it), one
control scale for all 13 residuals and the context setting. `controlled_call` wraps the UNet call
of one DDIM step: every batch row (the conditional and the unconditional pass, batched or not)
runs the encoder with its own context, the hint, latent, timestep and context laid out
batch-major (row b·T + f) like the UNet's frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ...core.errors import InputError
from ..nets.sketch_encoder import CONTEXT_MODES, SketchEncoder

DEFAULT_SCALE = 0.6  # the UI default of both community implementations
MAX_SCALE = 1.5
DEFAULT_CONTEXT = "text"  # spec A1: to be settled on a GPU against the paper's examples


def check_scale(scale: float) -> float:
    value = float(scale)
    if not (0.0 <= value <= MAX_SCALE):
        raise InputError(f"The sketch strength must be between 0 and {MAX_SCALE:g}, not {scale!r}.")
    return value


def check_context(mode: str) -> str:
    if mode not in CONTEXT_MODES:
        raise InputError(f"Unknown sketch context '{mode}': use one of {', '.join(CONTEXT_MODES)}.")
    return mode


@dataclass
class SketchGuidance:
    encoder: SketchEncoder
    hints: torch.Tensor  # (T, 1, H, W) float in [0, 1], one per output frame
    scale: float = DEFAULT_SCALE
    context: str = DEFAULT_CONTEXT

    def __post_init__(self) -> None:
        self.scale = check_scale(self.scale)
        self.context = check_context(self.context)
        hints = torch.as_tensor(np.asarray(self.hints) if isinstance(self.hints, np.ndarray) else self.hints)
        if hints.ndim == 3:
            hints = hints[:, None]
        if hints.ndim != 4 or hints.shape[1] != 1:
            raise InputError(f"Sketch hints must be (frames, 1, H, W), not {tuple(hints.shape)}.")
        self.hints = hints.float()

    def residuals(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> list[torch.Tensor]:
        """The 13 scaled residuals for a UNet input x (B, 4, T, h, w), t (B,), context (B, L, D)."""
        b, c, frames, h, w = x.shape
        if self.hints.shape[0] != frames:
            raise InputError(f"{self.hints.shape[0]} sketch hints for {frames} frames: give one per frame "
                             "(blank pages where there is no sketch).")
        encoder = self.encoder
        device = encoder.middle_block_out[0].weight.device
        x_frames = x.to(device).transpose(1, 2).reshape(b * frames, c, h, w)
        hint = self.hints.to(device).repeat(b, 1, 1, 1)  # the same hint for every batch row
        ctx = encoder.frame_context(context.to(device), frames, self.context)
        residuals = encoder(x_frames, hint, t.to(device), ctx)
        return [r.mul_(self.scale) if not torch.is_grad_enabled() else r * self.scale for r in residuals]


def controlled_call(unet_call: Callable[..., torch.Tensor], guidance: SketchGuidance
                    ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """(x, t, context) -> v with the residuals of `guidance` passed to `unet_call(..., control=)`."""

    def call(x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return unet_call(x, t, context, control=guidance.residuals(x, t, context))

    return call
