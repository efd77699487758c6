"""Building blocks of the ToonCrafter autoencoder (spec §7, §11.2, §11.3, §18).

Layouts: 2-D blocks take per-frame batches (B·T, C, H, W) with rows ordered b·T + f; the temporal
parts view them as (B, C, T, H, W). Parameter names follow the checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention, merge_heads, split_heads
from .unet_blocks import half_group_norm, uncast_group_norm_ok

VAE_NORM_EPS = 1e-6  # every 2-D GroupNorm of the VAE and the fusion attention's query norm
TEMPORAL_NORM_EPS = 1e-5  # the decoder's temporal res-blocks (trap 5)




def vae_norm(channels: int) -> nn.GroupNorm:
    return Float32GroupNorm(32, channels, eps=VAE_NORM_EPS, affine=True)


class Float32GroupNorm(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back (the original's GroupNorm32). A video (B, C, T,
    H, W) is normalised as (B, C, T·H, W): the same groups over the same elements, and a 4-D
    GroupNorm, which every device has (Apple's MPS has no 5-D one)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = x
        if y.dim() == 5:
            b, c, t, h, w = shape
            y = y.reshape(b, c, t * h, w)
        if x.dtype != torch.float32 and uncast_group_norm_ok(y):  # bit for bit the cast, without the copy
            return half_group_norm(y, self.num_groups, self.weight, self.bias, self.eps).view(shape)
        # float32 weights too: a half weight with a float32 input is refused (on the CPU at least)
        y = F.group_norm(y.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps)
        return y.view(shape).type(x.dtype)


def frames_to_video(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B·T, C, H, W) -> (B, C, T, H, W)."""
    bt, c, h, w = x.shape
    return x.view(bt // frames, frames, c, h, w).transpose(1, 2)


def video_to_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B·T, C, H, W)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


class ResnetBlock(nn.Module):
    """2-D VAE residual block without time embedding: conv1(SiLU(GN1 x)), conv2(SiLU(GN2 h)), 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = vae_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = vae_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return shortcut + h


class AttnBlock(nn.Module):
    """Single-head 2-D self-attention per frame over its H·W positions, scale C^-1/2, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = vae_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = self.norm(x)

        def tokens(t: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, 1, H·W, C)
            return t.flatten(2).transpose(1, 2).unsqueeze(1)

        out = attention(tokens(self.q(y)), tokens(self.k(y)), tokens(self.v(y)))
        out = out.squeeze(1).transpose(1, 2).reshape(n, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Zero-pad right and bottom by one, then a stride-2 3x3 convolution without padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TemporalResBlock(nn.Module):
    """The `time_stack`: GN(1e-5, over all frames) -> SiLU -> Conv3d (k,1,1), twice, plus identity."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = (kernel_size // 2, 0, 0)
        self.in_layers = nn.Sequential(
            Float32GroupNorm(32, channels, eps=TEMPORAL_NORM_EPS),
            nn.SiLU(),
            nn.Conv3d(channels, channels, (kernel_size, 1, 1), padding=pad),
        )
        self.out_layers = nn.Sequential(
            Float32GroupNorm(32, channels, eps=TEMPORAL_NORM_EPS),
            nn.SiLU(),
            nn.Dropout(0.0),
            nn.Conv3d(channels, channels, (kernel_size, 1, 1), padding=pad),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        return x + self.out_layers(self.in_layers(x))


class VideoResBlock(ResnetBlock):
    """Spatial ResnetBlock, then a temporal block blended in with alpha = sigmoid(mix_factor)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(in_channels, out_channels)
        self.time_stack = TemporalResBlock(out_channels, kernel_size)
        self.mix_factor = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # type: ignore[override]
        spatial = frames_to_video(super().forward(x), frames)
        alpha = torch.sigmoid(self.mix_factor).to(spatial.dtype)
        mixed = alpha * self.time_stack(spatial) + (1.0 - alpha) * spatial
        return video_to_frames(mixed)


class Combiner(nn.Module):
    """Dual-reference injection by addition: conv(start ref) onto the chunk's first frame and
    conv(end ref) onto its last frame (one shared 1x1 conv)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, reference: torch.Tensor, frames: int) -> torch.Tensor:
        """x (B·T, C, H, W); reference (B, C, 2, H, W)."""
        video = frames_to_video(x, frames).clone()
        start = self.conv(reference[:, :, 0])
        end = self.conv(reference[:, :, -1])
        video[:, :, 0] += start
        video[:, :, -1] += end
        return video_to_frames(video)


class FusionAttention(nn.Module):
    """Cross-attention of every frame's (normalised) pixels to the two reference maps' pixels.

    All frames of a batch entry share the same keys/values, so the frames' queries are attended as
    one long sequence: the same numbers as per-frame attention, one fused kernel call, and the
    score matrix is never materialised.
    """

    def __init__(self, channels: int, heads: int = 8, dim_head: int = 64) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(channels, inner, bias=False)
        self.to_k = nn.Linear(channels, inner, bias=False)
        self.to_v = nn.Linear(channels, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, channels), nn.Dropout(0.0))
        self.norm = vae_norm(channels)

    def forward(self, x: torch.Tensor, reference: torch.Tensor, frames: int) -> torch.Tensor:
        """x (B·T, C, H, W); reference (B, C, 2, H, W)."""
        bt, c, h, w = x.shape
        b = bt // frames
        queries = self.norm(x).view(b, frames, c, h * w).transpose(2, 3).reshape(b, frames * h * w, c)
        ref_tokens = reference.flatten(2).transpose(1, 2)  # (B, 2·H·W, C): start tokens, then end tokens
        q = split_heads(self.to_q(queries), self.heads)
        k = split_heads(self.to_k(ref_tokens), self.heads)
        v = split_heads(self.to_v(ref_tokens), self.heads)
        out = self.to_out(merge_heads(attention(q, k, v)))  # (B, T·H·W, C)
        out = out.view(b, frames, h * w, c).transpose(2, 3).reshape(bt, c, h, w)
        return x + out


class AE3DConv(nn.Conv2d):
    """conv_out: a per-frame 3x3 conv followed by `time_mix_conv`, a Conv3d (k,1,1) across the chunk."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1)
        self.time_mix_conv = nn.Conv3d(out_channels, out_channels, (kernel_size, 1, 1),
                                       padding=(kernel_size // 2, 0, 0))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # type: ignore[override]
        y = super().forward(x)
        return video_to_frames(self.time_mix_conv(frames_to_video(y, frames)))
