"""Building blocks of the ToonCrafter UNet3D (spec §8.3-§8.6).

Layout: activations are frames as a batch, (B·T, C, H, W) with row b·T + f, stored channels-last,
i.e. physically (B, T, H, W, C). That one layout serves everything without copies: convolutions
run NHWC, transformer tokens are a free view, and the temporal layers (which mean (B, C, T, H, W)
in the spec) see frame f of pixel p at row (b·T + f)·H·W + p. Attribute names are the
checkpoint's (including `temopral_conv`, sic), so `state_dict()` keys equal the original ones.
Every attention goes through `attention.attention`, which never materialises the score matrix.

Peak memory (inference, i.e. autograd off): every layer that works per frame (ResBlock spatial
part, spatial transformer) runs on groups of frames, temporal transformers on groups of pixel
sequences, and the GEGLU feed-forward on groups of rows; results go straight into the output
tensor. Each value is computed by exactly the same operations as without chunks, so only the size
of the transient tensors changes. Residuals are added in place. With autograd on, everything runs
in one piece.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention, merge_heads, split_heads

# Rows per feed-forward chunk: bounds the GEGLU hidden tensor (rows x 8C) to a few tens of MB.
FF_CHUNK_ELEMENTS = 1 << 23
# Frames / pixel sequences per chunk: a chunk's activation (items x elements each) stays near
# this many elements (16 MB in float32), e.g. 4 of 16 frames at the 512 model's full resolution.
CHUNK_ELEMENTS = 1 << 22


def chunk_ranges(total: int, elements_per_item: int) -> list[tuple[int, int]]:
    """Even [start, stop) ranges over `total` items, each near CHUNK_ELEMENTS elements; one range
    when autograd is on (chunked writes into a preallocated output are inference-only)."""
    if torch.is_grad_enabled() or total * elements_per_item <= CHUNK_ELEMENTS:
        return [(0, total)]
    count = min(total, -(-total * elements_per_item // CHUNK_ELEMENTS))
    step = -(-total // count)
    return [(start, min(total, start + step)) for start in range(0, total, step)]


def _add(x: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """x + y, in place into x when no gradient is being recorded (x is always a fresh activation);
    into `out` when given (a chunk's slice of a preallocated result: no copy afterwards)."""
    if out is not None:
        return torch.add(x, y, out=out)
    if torch.is_grad_enabled():
        return x + y
    return x.add_(y)


def half_group_norm(x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """GroupNorm of a half-precision `x` computed in float32 and rounded once to x's dtype.

    On the CPU, for channels-last activations (the UNet's layout), PyTorch's kernel takes the half
    input with float32 weight and bias as they are and computes in float32 inside: the same numbers,
    bit for bit, as casting (test_half_precision), without the float32 copy of the activation and
    the cast back, which were a fifth of a bf16 ResBlock's time. (Its NCHW variant rounds a few
    values differently, so other layouts, and other devices, cast as the original's GroupNorm32.)"""
    if uncast_group_norm_ok(x):
        return F.group_norm(x, groups, weight.float(), bias.float(), eps)
    return F.group_norm(x.float(), groups, weight.float(), bias.float(), eps).to(x.dtype)


def uncast_group_norm_ok(x: torch.Tensor) -> bool:
    """Whether `half_group_norm` may hand `x` to the kernel uncast (see there)."""
    return x.device.type == "cpu" and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm evaluated in float32 and cast back (the original does this in the ResBlocks and the
    head; in float32 models it is the plain GroupNorm, and in half precision it is what autocast does
    for the transformer norms too). Works on 4-D and 5-D inputs: on (B, C, T, H, W) the statistics
    of each group span all frames (trap 4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return half_group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


CHANNELS_LAST = torch.channels_last


def to_frames_layout(x: torch.Tensor) -> torch.Tensor:
    """(B·T, C, H, W) in the channels-last storage every block expects (no copy if already so)."""
    return x.contiguous(memory_format=CHANNELS_LAST)


def frames_rows(x: torch.Tensor) -> torch.Tensor:
    """Channels-last (N, C, H, W) -> (N·H·W, C) rows: a view."""
    n, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(n * h * w, c)


def rows_frames(rows: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """(N·H·W, C) rows -> channels-last (N, C, H, W): a view."""
    return rows.view(n, h, w, rows.shape[-1]).permute(0, 3, 1, 2)


def video_group_norm(norm: nn.GroupNorm, x: torch.Tensor, batch: int) -> torch.Tensor:
    """GroupNorm of frames (B·T, C, H, W) with statistics across all frames of each batch entry, as
    the original's GroupNorm on (B, C, T, H, W) (trap 4): the frames are viewed as (B, C, T·H, W),
    which has the same groups and the same elements per group."""
    n, c, h, w = x.shape
    video = x.permute(0, 2, 3, 1).reshape(batch, (n // batch) * h, w, c).permute(0, 3, 1, 2)
    y = norm(video)
    return y.permute(0, 2, 3, 1).reshape(n, h, w, c).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------------------------------
# Residual blocks


class TemporalConvBlock(nn.Module):
    """Four (GroupNorm 1e-5 across frames, SiLU, Conv3d (3,1,1) zero-padded in time) stages plus the
    identity (spec §8.3). Keys conv1.0/conv1.2 and convK.0/convK.3 (a Dropout sits at index 2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()

        def stage(with_dropout: bool) -> nn.Sequential:
            layers: list[nn.Module] = [GroupNorm32(32, channels, eps=1e-5), nn.SiLU()]
            if with_dropout:
                layers.append(nn.Dropout(0.0))
            layers.append(nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))
            return nn.Sequential(*layers)

        self.conv1 = stage(False)
        self.conv2 = stage(True)
        self.conv3 = stage(True)
        self.conv4 = stage(True)

    @staticmethod
    def _time_conv(rows: torch.Tensor, conv: nn.Conv3d, batch: int, frames: int, pixels: int) -> torch.Tensor:
        """The (3,1,1) convolution on rows ordered (b, t, pixel): three matrix products, the two
        neighbour frames being the rows one frame (`pixels` rows) earlier and later. Zero padding in
        time = those products simply skip the first / last frame. No im2col buffer."""
        # (3, C_out, C_in): taps for frames t-1, t, t+1, each a contiguous matrix. One copy per call;
        # slicing the (C_out, C_in, 3) weight per tap instead makes every product clone a strided
        # matrix first (three times slower, ~1 CPU-s per bf16 forward at 1280 channels).
        taps = conv.weight[..., 0, 0].permute(2, 0, 1).contiguous()
        out = torch.addmm(conv.bias, rows, taps[1].t())
        if frames > 1:
            span = frames * pixels
            for b in range(batch):
                src, dst = rows[b * span : (b + 1) * span], out[b * span : (b + 1) * span]
                dst[pixels:].addmm_(src[:-pixels], taps[0].t())
                dst[:-pixels].addmm_(src[pixels:], taps[2].t())
        return out

    def forward(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        n, c, h, w = x.shape
        inplace = not torch.is_grad_enabled()
        y = x
        for stage in (self.conv1, self.conv2, self.conv3, self.conv4):
            y = F.silu(video_group_norm(stage[0], y, batch), inplace=inplace)
            rows = self._time_conv(frames_rows(to_frames_layout(y)), stage[-1], batch, n // batch, h * w)
            y = rows_frames(rows, n, h, w)
        return _add(y, x)


class ResBlock(nn.Module):
    """UNet residual block with timestep embedding, followed by the temporal conv block (§8.3)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, temporal_conv: bool = True) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            GroupNorm32(32, channels, eps=1e-5), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(32, out_channels, eps=1e-5),
            nn.SiLU(),
            nn.Dropout(0.0),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection: nn.Module = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )
        self.temopral_conv = TemporalConvBlock(out_channels) if temporal_conv else None

    def _spatial(self, x: torch.Tensor, emb_out: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The per-frame part: GN, SiLU, conv, + embedding, GN, SiLU, conv, + skip (into `out`)."""
        inplace = not torch.is_grad_enabled()
        h = self.in_layers[2](F.silu(self.in_layers[0](x), inplace=inplace))
        h = _add(h, emb_out[:, :, None, None])
        h = self.out_layers[3](F.silu(self.out_layers[0](h), inplace=inplace))
        return _add(h, self.skip_connection(x), out)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, batch: int, skip: torch.Tensor | None = None) -> torch.Tensor:
        """`skip`, if given, is concatenated to `x` along channels first (the output blocks' input);
        with chunks, only one chunk of the concatenation exists at a time."""
        emb_out = self.emb_layers[1](F.silu(emb)).to(x.dtype)
        n, _, hh, ww = x.shape
        channels = self.in_layers[0].num_channels
        ranges = chunk_ranges(n, max(channels, self.out_layers[0].num_channels) * hh * ww)
        if len(ranges) == 1:
            h = self._spatial(x if skip is None else torch.cat([x, skip], dim=1), emb_out)
        else:
            h = torch.empty((n, self.out_layers[0].num_channels, hh, ww), dtype=x.dtype, device=x.device,
                            memory_format=CHANNELS_LAST)
            for start, stop in ranges:
                xs = x[start:stop] if skip is None else torch.cat([x[start:stop], skip[start:stop]], dim=1)
                self._spatial(xs, emb_out[start:stop], out=h[start:stop])
                del xs
        if self.temopral_conv is not None:
            h = self.temopral_conv(h, batch)
        return h


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


# --------------------------------------------------------------------------------------------------
# Attention and transformer blocks


class Attention(nn.Module):
    """Multi-head attention, query width `query_dim`, `heads` x `dim_head` inner width.

    Self-attention when called without context. With `image_tokens` (the ToonCrafter cross
    attention), the context's first `text_tokens` tokens go through to_k/to_v and the rest through
    to_k_ip/to_v_ip; the two softmaxes are separate and their outputs are summed (trap 8)."""

    def __init__(
        self,
        query_dim: int,
        heads: int,
        dim_head: int,
        context_dim: int | None = None,
        image_tokens: bool = False,
        text_tokens: int = 77,
        image_scale: float = 1.0,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.text_tokens = text_tokens
        self.image_scale = image_scale
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim))
        self.has_image = image_tokens
        if image_tokens:
            self.to_k_ip = nn.Linear(context_dim, inner, bias=False)
            self.to_v_ip = nn.Linear(context_dim, inner, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        heads = self.heads
        q = split_heads(self.to_q(x), heads)
        if context is None:
            context = x
        if self.has_image:
            text, image = context[:, : self.text_tokens], context[:, self.text_tokens :]
            out = attention(q, split_heads(self.to_k(text), heads), split_heads(self.to_v(text), heads))
            out_ip = attention(q, split_heads(self.to_k_ip(image), heads), split_heads(self.to_v_ip(image), heads))
            if self.image_scale != 1.0:
                out_ip = out_ip * self.image_scale
            out = _add(out, out_ip)
            del out_ip
        else:
            out = attention(q, split_heads(self.to_k(context), heads), split_heads(self.to_v(context), heads))
        del q
        return self.to_out[0](merge_heads(out))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        if torch.is_grad_enabled():
            return a * F.gelu(gate)
        return a.mul_(F.gelu(gate))  # in place into the projection's first half


class FeedForward(nn.Module):
    """GEGLU feed-forward, inner width 4·dim (keys net.0.proj, net.2). Token-wise, so it runs in row
    chunks without changing any value; the chunks bound the 8·dim-wide hidden tensor."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim))

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1])
        hidden = self.net[0].proj.out_features
        chunk = max(1, FF_CHUNK_ELEMENTS // hidden)
        if torch.is_grad_enabled() or rows.shape[0] <= chunk:
            return self._rows(rows).view(shape)
        out = torch.empty_like(rows)
        last = self.net[2]
        for start in range(0, rows.shape[0], chunk):
            # the output projection (what F.linear runs: addmm) writes straight into its rows of `out`
            torch.addmm(last.bias, self.net[0](rows[start : start + chunk]), last.weight.t(),
                        out=out[start : start + chunk])
        return out.view(shape)


class TransformerBlock(nn.Module):
    """attn1 (self), attn2 (cross, or self when `context_dim` is None), GEGLU FF; pre-LayerNorms.
    Registration order attn1, ff, attn2, norm1..3 matches the checkpoint's key order."""

    def __init__(
        self,
        dim: int,
        heads: int,
        dim_head: int,
        context_dim: int | None = None,
        image_tokens: bool = False,
        text_tokens: int = 77,
    ) -> None:
        super().__init__()
        self.attn1 = Attention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, heads, dim_head, context_dim, image_tokens=image_tokens, text_tokens=text_tokens)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = _add(x, self.attn1(self.norm1(x)))
        x = _add(x, self.attn2(self.norm2(x), context))
        x = _add(x, self.ff(self.norm3(x)))
        return x


class SpatialTransformer(nn.Module):
    """Per-frame transformer on (B·T, C, H, W) with linear projections (§8.4)."""

    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        depth: int,
        context_dim: int,
        image_tokens: bool,
        text_tokens: int = 77,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = GroupNorm32(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(inner, heads, dim_head, context_dim, image_tokens=image_tokens, text_tokens=text_tokens)
            for _ in range(depth)
        )
        self.proj_out = nn.Linear(inner, channels)

    def _frames(self, x: torch.Tensor, context: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = self.proj_in(frames_rows(to_frames_layout(self.norm(x))).view(n, h * w, c))
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        tokens = self.proj_out(tokens)
        return _add(rows_frames(tokens.view(n * h * w, c), n, h, w), x, out)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        ranges = chunk_ranges(n, max(c, self.proj_in.out_features) * h * w)
        if len(ranges) == 1:
            return self._frames(x, context)
        out = torch.empty_like(x, memory_format=CHANNELS_LAST)
        for start, stop in ranges:  # every frame is independent, with its own context rows
            self._frames(x[start:stop], context[start:stop], out=out[start:stop])
        return out


class TemporalTransformer(nn.Module):
    """Self-attention over the frames of each pixel, on (B, C, T, H, W) (§8.5).

    Both attn1 and attn2 are self-attention. `conv_projections` gives the init_attn layout: Conv1d
    (kernel 1) proj_in/proj_out, applied here as the equivalent per-token linear maps."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, conv_projections: bool = False) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = GroupNorm32(32, channels, eps=1e-6)
        if conv_projections:
            self.proj_in: nn.Module = nn.Conv1d(channels, inner, 1)
        else:
            self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(TransformerBlock(inner, heads, dim_head) for _ in range(depth))
        if conv_projections:
            self.proj_out: nn.Module = nn.Conv1d(inner, channels, 1)
        else:
            self.proj_out = nn.Linear(inner, channels)

    @staticmethod
    def _project(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        weight = layer.weight
        if weight.dim() == 3:  # Conv1d, kernel 1
            weight = weight[..., 0]
        return F.linear(x, weight, layer.bias)

    def _sequences(self, seq: torch.Tensor) -> torch.Tensor:
        """(S, T, C) pixel sequences -> (S, T, C) block output before the residual."""
        seq = self._project(self.proj_in, seq)
        for block in self.transformer_blocks:
            seq = block(seq)
        return self._project(self.proj_out, seq)

    def forward(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        n, c, h, w = x.shape
        t, pixels = n // batch, h * w
        normed = video_group_norm(self.norm, x, batch)
        # Physical (B, T, H·W, C) views: one sequence of T frames per pixel (independent sequences).
        normed_btpc = frames_rows(to_frames_layout(normed)).view(batch, t, pixels, c)
        x_btpc = frames_rows(to_frames_layout(x)).view(batch, t, pixels, c)
        inner = self.proj_in.weight.shape[0]
        ranges = chunk_ranges(pixels, max(c, inner) * t)
        if len(ranges) == 1:  # all sequences at once (also the autograd path)
            out = self._sequences(normed_btpc.transpose(1, 2).reshape(batch * pixels, t, c))
            out = out.view(batch, pixels, t, c).transpose(1, 2).reshape(n * pixels, c)
            return _add(rows_frames(out, n, h, w), x)
        result = torch.empty_like(x, memory_format=CHANNELS_LAST)
        result_btpc = frames_rows(result).view(batch, t, pixels, c)
        for b in range(batch):
            for start, stop in ranges:
                seq = normed_btpc[b, :, start:stop].transpose(0, 1).contiguous()
                out = self._sequences(seq).transpose(0, 1)
                torch.add(out, x_btpc[b, :, start:stop], out=result_btpc[b, :, start:stop])
        return result


class Stage(nn.ModuleList):
    """One entry of input_blocks / middle_block / output_blocks (or init_attn): layers applied in
    order, each given what it needs (the original's TimestepEmbedSequential)."""

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, batch: int, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`skip` (output blocks) is concatenated to `x` along channels before the first layer."""
        for index, layer in enumerate(self):
            if index == 0 and skip is not None and not isinstance(layer, ResBlock):
                x = torch.cat([x, skip], dim=1)
            if isinstance(layer, ResBlock):
                x = layer(x, emb, batch, skip if index == 0 else None)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                x = layer(x, batch)
            else:
                x = layer(x)
        return x
