"""A memory-lean way to run the dual-reference video decoder with the same numbers (within float
rounding) as `VideoDecoder.forward`.

Where the plain decoder holds several full-resolution temporaries at once (norm, SiLU and conv
outputs of a 16-frame 320x512 chunk are 0.7-1.3 GB each in fp16), this path keeps at most the input
and the output of one block alive at full size and computes everything else in pieces:

- per-frame work (the spatial ResnetBlocks, upsampling, the mid attention, the fusion attention's
  queries, norm_out, conv_out) runs a few frames at a time, because every one of those operations,
  including its GroupNorm, sees one frame only; each upsampling is fused into the next block's
  spatial pass, so its 4x larger output never exists whole;
- the temporal res-blocks (`time_stack`), whose GroupNorms take statistics across all frames of the
  chunk, first gather those statistics in a pass over row bands (float32, merged pairwise), then apply
  norm, SiLU and the (k,1,1) temporal convolution band by band: that convolution has no spatial
  extent, so a band of rows over all frames is an exact piece of the result. The inner activation
  of a temporal block is recomputed band by band rather than stored (one extra cheap conv).

Results differ from the plain path only by float summation order (~1e-7 relative in float32).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .ae_blocks import (
    AttnBlock,
    Combiner,
    FusionAttention,
    ResnetBlock,
    TemporalResBlock,
    Upsample,
    VideoResBlock,
)


def _frame_pieces(total: int, step: int) -> list[slice]:
    return [slice(s, min(s + step, total)) for s in range(0, total, step)]


def _per_frame(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, budget: int) -> torch.Tensor:
    """fn applied to as many frames at a time as fit in `budget` input elements (at least one),
    written into one preallocated output."""
    step = _frames_per_piece(x, budget)
    out = None
    for piece in _frame_pieces(x.shape[0], step):
        y = fn(x[piece])
        if out is None:
            out = y.new_empty((x.shape[0], *y.shape[1:]))
        out[piece] = y
    assert out is not None
    return out


class _GroupMoments:
    """Per-(batch, group) mean and sum of squared deviations, merged band by band (Chan et al.'s
    pairwise update) in float32: stable without float64, which some devices (MPS) do not have."""

    def __init__(self, batch: int, groups: int, device: torch.device) -> None:
        self.groups = groups
        self.mean = torch.zeros(batch, groups, dtype=torch.float32, device=device)
        self.m2 = torch.zeros_like(self.mean)
        self.count = 0

    def add(self, band: torch.Tensor) -> None:
        values = band.float().reshape(band.shape[0], self.groups, -1)
        n = values.shape[-1]
        var, mean = torch.var_mean(values, dim=-1, correction=0)
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += var * n + delta * delta * (self.count * n / total)
        self.count = total

    def mean_inv_std(self, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        var = (self.m2 / self.count).clamp_min(0.0)
        return self.mean, torch.rsqrt(var + eps)


def _bands(h: int, rows: int) -> list[slice]:
    return [slice(r, min(r + rows, h)) for r in range(0, h, rows)]


def _apply_group_norm(band: torch.Tensor, norm: torch.nn.GroupNorm, mean: torch.Tensor,
                      inv_std: torch.Tensor) -> torch.Tensor:
    """GroupNorm of a row band with statistics taken over the whole tensor; float32, cast back."""
    b, c, t, h, w = band.shape
    g = norm.num_groups
    y = band.float().reshape(b, g, c // g, t, h, w)
    y = (y - mean.view(b, g, 1, 1, 1, 1)) * inv_std.view(b, g, 1, 1, 1, 1)
    y = y.reshape(b, c, t, h, w) * norm.weight.float().view(1, c, 1, 1, 1) + norm.bias.float().view(1, c, 1, 1, 1)
    return y.to(band.dtype)


def _temporal_mix_inplace(block: VideoResBlock, spatial: torch.Tensor, rows: int) -> None:
    """spatial (B, C, T, H, W) <- alpha·time_stack(spatial) + (1-alpha)·spatial, band by band.

    The inner activation (after the first temporal conv) is never stored whole: a first pass over
    the bands gathers its statistics, the second recomputes each band (one extra (k,1,1) conv)."""
    stack: TemporalResBlock = block.time_stack
    norm1, conv1 = stack.in_layers[0], stack.in_layers[2]
    norm2, conv2 = stack.out_layers[0], stack.out_layers[3]
    b, h = spatial.shape[0], spatial.shape[3]
    bands = _bands(h, rows)
    moments = _GroupMoments(b, norm1.num_groups, spatial.device)
    for band in bands:
        moments.add(spatial[:, :, :, band])
    mean1, inv1 = moments.mean_inv_std(norm1.eps)

    def inner(band: slice) -> torch.Tensor:
        return conv1(F.silu(_apply_group_norm(spatial[:, :, :, band], norm1, mean1, inv1)))

    moments = _GroupMoments(b, norm2.num_groups, spatial.device)
    for band in bands:
        moments.add(inner(band))
    mean2, inv2 = moments.mean_inv_std(norm2.eps)
    alpha = torch.sigmoid(block.mix_factor).to(spatial.dtype)
    for band in bands:
        x = spatial[:, :, :, band]
        stacked = x + conv2(F.silu(_apply_group_norm(inner(band), norm2, mean2, inv2)))
        spatial[:, :, :, band] = alpha * stacked + (1.0 - alpha) * x


def _rows_for(x: torch.Tensor, frames: int, budget: int) -> int:
    """Rows per band so that one band of all frames holds about `budget` elements."""
    _, c, h, w = x.shape
    return max(1, min(h, budget // max(1, frames * c * w)))


def video_res_block(block: VideoResBlock, slot: list[torch.Tensor], frames: int, budget: int,
                    upsample: Upsample | None = None) -> None:
    """slot[0] <- the block's output; the input is released as soon as the spatial part is done.
    `upsample` (per frame) is fused in front of the spatial part, so its 4x larger output never
    exists whole."""
    if upsample is None:
        spatial = _per_frame(lambda piece: ResnetBlock.forward(block, piece), slot.pop(), budget)
    else:
        spatial = _per_frame(lambda piece: ResnetBlock.forward(block, upsample(piece)), slot.pop(), budget // 4)
    slot.append(spatial)
    bt, c, h, w = spatial.shape
    video = spatial.view(bt // frames, frames, c, h, w).permute(0, 2, 1, 3, 4)  # a view, no copy
    _temporal_mix_inplace(block, video, _rows_for(spatial, frames, budget))


def decode_lean(decoder, z: torch.Tensor, references: list[torch.Tensor], frames: int,
                piece_elements: int = 1 << 24) -> torch.Tensor:
    """`decoder(z, references, frames)` computed in pieces of about `piece_elements` input values:
    whole frames for the per-frame work (at least one frame), row bands over all frames for the
    temporal blocks. One video per call (B = 1, as `Autoencoder.decode` calls it)."""
    if z.shape[0] != frames:
        raise ValueError("decode_lean decodes one video chunk at a time")
    budget = piece_elements
    # `slot` holds the one live activation, so each step can drop its input before the next pass.
    slot = [_per_frame(decoder.conv_in, z, budget)]
    video_res_block(decoder.mid.block_1, slot, frames, budget)
    mid_attn: AttnBlock = decoder.mid.attn_1
    slot.append(_per_frame(mid_attn, slot.pop(), budget))
    video_res_block(decoder.mid.block_2, slot, frames, budget)
    levels = len(decoder.up)
    pending: Upsample | None = None  # an upsample fused into the next block
    for level in reversed(range(levels)):
        stage = decoder.up[level]
        for block in stage.block:
            video_res_block(block, slot, frames, budget, pending)
            pending = None
        _refine(decoder.attn_refinement[level], slot[0], references[level], budget)
        if hasattr(stage, "upsample"):
            pending = stage.upsample
    if pending is not None:  # a config whose last level upsamples (not ToonCrafter's)
        slot.append(_per_frame(pending, slot.pop(), budget // 4))
    h = slot.pop()
    norm_out = decoder.norm_out
    for piece in _frame_pieces(h.shape[0], _frames_per_piece(h, budget)):
        h[piece] = F.silu(norm_out(h[piece]))
    _refine(decoder.attn_refinement[levels], h, references[levels], budget)
    conv_out = decoder.conv_out
    y = _per_frame(lambda piece: F.conv2d(piece, conv_out.weight, conv_out.bias, padding=1), h, budget)
    del h
    video = y.view(1, frames, *y.shape[1:]).transpose(1, 2)
    mixed = conv_out.time_mix_conv(video)
    return mixed.transpose(1, 2).reshape(y.shape)


def _frames_per_piece(x: torch.Tensor, budget: int) -> int:
    return max(1, budget // max(1, x[0].numel()))


def _refine(module, h: torch.Tensor, reference: torch.Tensor, budget: int) -> None:
    """In place: the reference injection of one level."""
    if isinstance(module, Combiner):
        h[0] += module.conv(reference[:, :, 0])[0]
        h[-1] += module.conv(reference[:, :, -1])[0]
        return
    assert isinstance(module, FusionAttention)
    # Every frame's queries attend to the same reference tokens: frame pieces are exact.
    for piece in _frame_pieces(h.shape[0], _frames_per_piece(h, budget)):
        h[piece] = module(h[piece], reference, piece.stop - piece.start)
