"""The optical-flow in-betweener's numerics: flow once per segment, then a cheap frame per time.

Outline (numpy / OpenCV):
1. Seeds for large motion (regions.py): flat-colour regions between ink lines are matched
   across the keys (colour, area, shape, distance); each match gives a similarity transform
   (shift, turn of the principal axis, scale) and a camera pan is taken from phase correlation
   when the background agrees. Optionally (test_unmatched) regions without a match try the
   main motions.
2. Dense flow both ways with OpenCV DIS (the two directions side by side in two threads),
   started from those seeds, on luminance at a working resolution bounded for speed (the warp
   itself runs at full resolution).
3. Per key pixel a confidence: its flow comes back (forward-backward consistency) and lands on
   the same colour in the other key.
4. For each time t the *flow* (not the colours) is splatted forward: every key pixel writes
   "where I came from" to the four pixels around where it lands at t. Collisions follow depth
   order: trusted pixels in front of ones hidden in the other key, then larger motion in front
   (a character over a still background). A median filter removes single-pixel collision
   outliers. Holes of one side take the other side's flow, then push-pull fill.
5. Both keys are backward-warped (bilinear: lines stay sharp) and blended by time and
   confidence; where the two warps disagree strongly the blend leans to the heavier side, so a
   line comes out once instead of as two half-dark ghosts.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from ...core.errors import InputError
from . import blend as flow_blend
from .fill import push_pull_fill
from .regions import seed_flows

# Longest side of the image the flow is computed and splatted on; larger keys are scaled down for
# the flow only (the warp itself runs at full resolution).
DEFAULT_FLOW_SIDE = 512


@dataclass
class FlowSettings:
    flow_side: int = DEFAULT_FLOW_SIDE
    region_seeds: bool = True  # start DIS from matched flat-colour regions (large motion)
    test_unmatched: bool = False  # unmatched regions try the picture's main motions (slower; on the
    # eval sets it scored 0.05 dB lower on the public set and 0.02 dB higher on the real one)
    consistency_px: float = 3.0  # forward-backward error scale for "visible in the other key"
    photo_sigma: float = 10.0  # colour mismatch (0..255) at which a flow's confidence drops to 1/e
    photo_window: int = 5
    source_median: int = 0  # median filter (3 or 5) on the DIS flows; 0: off
    time_power: float = 1.0  # blend weight of a key ~ (closeness in time) ** this
    graded_depth: bool = True  # depth order by graded confidence (else visible yes/no)
    flow_median: int = 5  # median filter (3 or 5) on the splatted flows; 0: off
    weight_blur: float = 0.0  # Gaussian sigma (px) on the blend weights; 0: off
    hole_weight: float = 0.05  # weight of a sample that only fills a hole of its key's splat
    decisive: float = 0.15  # 0: plain weighted blend; 1: hard choice where the warps disagree
    disagreement: float = 0.12  # colour difference (0..1) from which the blend becomes decisive
    dis_finest_scale: int = 0  # 0: full working resolution; 1: half (faster)
    dis_patch: int = 8
    dis_stride: int = 3
    dis_iterations: int = 25
    dis_refine: int = 3  # variational refinement iterations per scale (3 scored a little better than 5
    # on the public set, a little lower on the real one, and is cheaper)
    seed_side: int = 0  # longest side the region seeds are matched on (0: the flow's resolution)
    learned: bool = False  # the learned blend (blend.py) after the hand-made one, 8-bit RGB only
    learned_min_flat: float = 0.65  # ... and only on flat-colour drawings: this fraction of the start
    # key flat (it was trained on such drawings; on textured anime frames it scored 0.5 dB lower)
    flip_occlusion: bool = False  # variant: where the warps disagree, the lighter side wins
    lean_power: float = 1.0  # variant: the start key's share to this power (<1: start-dominant,
    # >1: end-dominant; the keys' own times keep their share of 1 and 0)


@dataclass
class FrameLayers:
    """What one in-between is blended from: full-resolution warps and share, flow-resolution
    back flows and confidences."""

    warp0: np.ndarray
    warp1: np.ndarray
    share0: np.ndarray
    back0: np.ndarray
    back1: np.ndarray
    conf0: np.ndarray
    conf1: np.ndarray


# Presets selectable through request.params["quality"]: "best" (default; with the learned blend)
# and "fast" (previews, scrubbing): flow on a quarter of the pixels with a coarser DIS, hand-made
# blend.
PRESETS: dict[str, dict[str, float | int | bool]] = {
    "best": {"learned": True},
    "fast": {"flow_side": 256, "dis_finest_scale": 1, "dis_iterations": 12, "dis_stride": 4},
}


def settings_for(quality: str) -> FlowSettings:

    if quality not in PRESETS:
        raise InputError(f"Unknown flow quality '{quality}'. Use one of: {', '.join(PRESETS)}.")
    return FlowSettings(**PRESETS[quality])  # type: ignore[arg-type]


def _luma8(image: np.ndarray) -> np.ndarray:
    """8-bit luminance of a float RGB(A) image in [0, 1]; transparent parts over mid grey."""
    rgb = image[..., :3]
    if image.shape[2] == 4:
        alpha = image[..., 3:4]
        rgb = rgb * alpha + 0.5 * (1.0 - alpha)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(luma * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _rgb8(image: np.ndarray) -> np.ndarray:
    """8-bit RGB of a float RGB(A) image; transparent parts over mid grey."""
    rgb = image[..., :3]
    if image.shape[2] == 4:
        alpha = image[..., 3:4]
        rgb = rgb * alpha + 0.5 * (1.0 - alpha)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _dis(settings: FlowSettings) -> cv2.DISOpticalFlow:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(settings.dis_finest_scale)
    dis.setPatchSize(settings.dis_patch)
    dis.setPatchStride(settings.dis_stride)
    dis.setGradientDescentIterations(settings.dis_iterations)
    dis.setVariationalRefinementIterations(settings.dis_refine)
    dis.setUseMeanNormalization(True)
    dis.setUseSpatialPropagation(True)
    return dis


MIN_FLOW_SIDE = 16  # DIS needs a few pixels; tiny keys are padded for the flow only


def dense_flows(a8: np.ndarray, b8: np.ndarray, init_ab: np.ndarray | None = None,
                init_ba: np.ndarray | None = None, settings: FlowSettings | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Flow a->b and b->a (HxWx2 float32, pixels) of two 8-bit single-channel images.

    `init_*` are initial flows (e.g. from region matching) that DIS refines.
    """
    h, w = a8.shape[:2]
    pad_y, pad_x = max(0, MIN_FLOW_SIDE - h), max(0, MIN_FLOW_SIDE - w)
    if pad_x or pad_y:
        def pad(img):
            return None if img is None else cv2.copyMakeBorder(img, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        a8, b8, init_ab, init_ba = pad(a8), pad(b8), pad(init_ab), pad(init_ba)
    settings = settings or FlowSettings()
    init_ab = None if init_ab is None else np.array(init_ab, np.float32)  # DIS writes into it
    init_ba = None if init_ba is None else np.array(init_ba, np.float32)
    if cv2.getNumThreads() > 1:
        # The two directions are independent and OpenCV releases the GIL: run them side by side
        # (DIS itself keeps a second core only partly busy). One DIS object per thread.
        with ThreadPoolExecutor(max_workers=1) as pool:
            backward = pool.submit(_dis(settings).calc, b8, a8, init_ba)
            f_ab = _dis(settings).calc(a8, b8, init_ab)
            f_ba = backward.result()
    else:
        dis = _dis(settings)
        f_ab = dis.calc(a8, b8, init_ab)
        f_ba = dis.calc(b8, a8, init_ba)
    return f_ab[:h, :w], f_ba[:h, :w]


def flat_fraction(rgb8: np.ndarray) -> float:
    """Share of pixels in flat colour (no channel changes by more than 4 within 3x3): about 0.8-0.97
    on flat-fill cartoon drawings, below 0.5 on textured or noisy frames."""
    gradient = cv2.morphologyEx(rgb8, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    return float((gradient.max(axis=2) <= 4).mean())


@functools.lru_cache(maxsize=2)
def _pixel_grid(h: int, w: int) -> np.ndarray:
    """HxWx2 float32 (x, y) of every pixel, read-only; cached per size (a 1080p one takes ~10 ms)."""
    grid = np.empty((h, w, 2), np.float32)
    grid[..., 0] = np.arange(w, dtype=np.float32)
    grid[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    grid.flags.writeable = False
    return grid


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def consistency_error(f_ab: np.ndarray, f_ba: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """|f_ab(x) + f_ba(x + f_ab(x))| per pixel of a: small where the pixel is visible in b."""
    back = cv2.remap(f_ba, xs + f_ab[..., 0], ys + f_ab[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=(1e4, 1e4))
    return cv2.magnitude(*cv2.split(f_ab + back))


def _reliability(flow: np.ndarray, error: np.ndarray, consistency_px: float) -> float:
    """Share of the moving pixels (flow over 1 px) whose flow comes back from the other key: near
    1 when the flows agree, low when large motions leave them guessing."""
    moving = cv2.magnitude(*cv2.split(flow)) > 1.0
    if moving.mean() < 0.002:
        return 1.0
    return float(np.exp(-((error[moving] / consistency_px) ** 2)).mean())


class _Splatter:
    """Forward splatting of one key's flow to any time, with a precomputed depth order."""

    def __init__(self, flow: np.ndarray, error: np.ndarray, consistency_px: float,
                 confidence: np.ndarray | None = None, graded: bool = False) -> None:
        h, w = flow.shape[:2]
        self.h, self.w = h, w
        self.flow = flow.reshape(-1, 2)
        xs, ys = _grid(h, w)
        self.xs = xs.ravel()
        self.ys = ys.ravel()
        visible = error < consistency_px
        # Depth priority: visible (consistent) pixels in front; among equals, larger motion in
        # front (characters move over still backgrounds). A stable sort of the small integer
        # priorities (a radix sort) gives the depth order; np.maximum.at on the ranks then picks
        # the front pixel wherever several land on one place.
        magnitude = cv2.magnitude(*cv2.split(flow)).ravel()
        if graded and confidence is not None:
            level = np.round(confidence.ravel() * 15).astype(np.int16)
            priority = level * 512 + np.minimum(magnitude * 4, 511).astype(np.int16)
        else:
            priority = visible.ravel().astype(np.int16) * 4096 + np.minimum(magnitude * 8, 4095).astype(np.int16)
        order = np.argsort(priority, kind="stable").astype(np.int32)
        self.rank = np.empty(h * w, np.int32)
        self.rank[order] = np.arange(h * w, dtype=np.int32)
        # Per rank (plus one empty row at the end for "nothing landed here", index -1) the flow
        # and the visibility, so a splat is a single gather with no masking.
        self.fx = np.ascontiguousarray(self.flow[:, 0])
        self.fy = np.ascontiguousarray(self.flow[:, 1])
        self.ranked_flow = np.zeros((h * w + 1, 2), np.float32)
        self.ranked_flow[:-1] = self.flow[order]
        visibility = (visible if confidence is None else confidence).ravel().astype(np.float32)
        self.ranked_visible = np.zeros(h * w + 1, np.float32)
        self.ranked_visible[:-1] = visibility[order]

    def splat(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flow from the time-t frame back into this key, hit mask, visibility) at time t."""
        h, w = self.h, self.w
        pw = w + 3  # a border catches everything that lands outside
        x = self.xs + np.float32(t) * self.fx
        np.floor(x, out=x)
        np.clip(x, -1, w, out=x)
        y = self.ys + np.float32(t) * self.fy
        np.floor(y, out=y)
        np.clip(y, -1, h, out=y)
        base = y.astype(np.int32)
        base += 1
        base *= pw
        base += x.astype(np.int32)
        base += 1
        best = np.full((h + 3) * pw, -1, np.int32)
        for offset in (0, 1, pw, pw + 1):
            np.maximum.at(best, base + offset if offset else base, self.rank)
        best = best.reshape(h + 3, pw)[1:h + 1, 1:w + 1].ravel()
        hit = best >= 0
        # Locally constant motion: the target pixel p came from p - t * flow(source); -1 (no
        # hit) reads the empty last row.
        back = self.ranked_flow[best]
        back *= np.float32(-t)
        vis = self.ranked_visible[best]
        return back.reshape(h, w, 2), hit.reshape(h, w), vis.reshape(h, w)


class SegmentInterpolator:
    """Everything that depends only on the two keys, computed once; `frame(t)` per time."""

    def __init__(self, start: np.ndarray, end: np.ndarray, settings: FlowSettings | None = None) -> None:
        """`start`/`end`: HxWxC float32 in [0, 1] (any C), or uint8 HxWxC (warped as bytes: faster)."""
        self.settings = settings or FlowSettings()
        self.start = start
        self.end = end
        self.peak = 255.0 if start.dtype == np.uint8 else 1.0
        h, w = start.shape[:2]
        self.h, self.w = h, w
        scale = min(1.0, self.settings.flow_side / max(h, w))
        fh, fw = max(8, round(h * scale)), max(8, round(w * scale))
        self.fh, self.fw = fh, fw
        self.sx, self.sy = w / fw, h / fh
        small_a, small_b = start, end
        if (fh, fw) != (h, w):
            small_a = cv2.resize(start, (fw, fh), interpolation=cv2.INTER_AREA)
            small_b = cv2.resize(end, (fw, fh), interpolation=cv2.INTER_AREA)
        if start.dtype == np.uint8:
            small_a = small_a.astype(np.float32) * np.float32(1 / 255)
            small_b = small_b.astype(np.float32) * np.float32(1 / 255)
        a8, b8 = _luma8(small_a), _luma8(small_b)
        init_ab = init_ba = None
        if self.settings.region_seeds:
            init_ab, init_ba = self._seeds(small_a, small_b)
        f01, f10 = dense_flows(a8, b8, init_ab, init_ba, self.settings)
        if self.settings.source_median:
            f01 = cv2.medianBlur(np.ascontiguousarray(f01), self.settings.source_median)
            f10 = cv2.medianBlur(np.ascontiguousarray(f10), self.settings.source_median)
        xs, ys = _grid(fh, fw)
        err0 = consistency_error(f01, f10, xs, ys)
        err1 = consistency_error(f10, f01, xs, ys)
        self.reliability = _reliability(f01, err0, self.settings.consistency_px)
        conf0 = conf1 = None
        self.flat_fraction = flat_fraction(_rgb8(small_a)) if self.settings.learned else 0.0
        if self.settings.photo_sigma > 0:
            a_rgb, b_rgb = _rgb8(small_a), _rgb8(small_b)
            conf0 = self._confidence(a_rgb, b_rgb, f01, err0, xs, ys)
            conf1 = self._confidence(b_rgb, a_rgb, f10, err1, xs, ys)
        self.splat0 = _Splatter(f01, err0, self.settings.consistency_px, conf0, self.settings.graded_depth)
        self.splat1 = _Splatter(f10, err1, self.settings.consistency_px, conf1, self.settings.graded_depth)
        self.full_grid = _pixel_grid(h, w)

    def _seeds(self, small_a: np.ndarray, small_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Initial flows from matched regions; matched at a lower resolution when `seed_side` asks
        (regions are large: matching them on a quarter of the pixels finds the same motions)."""
        s = self.settings
        fh, fw = self.fh, self.fw
        scale = min(1.0, s.seed_side / max(fh, fw)) if s.seed_side else 1.0
        sh, sw = max(8, round(fh * scale)), max(8, round(fw * scale))
        if (sh, sw) != (fh, fw):
            small_a = cv2.resize(small_a, (sw, sh), interpolation=cv2.INTER_AREA)
            small_b = cv2.resize(small_b, (sw, sh), interpolation=cv2.INTER_AREA)
        seeds = seed_flows(_rgb8(small_a), _rgb8(small_b), s.test_unmatched)
        if (sh, sw) == (fh, fw):
            return seeds.flow_ab, seeds.flow_ba
        gain = np.array([fw / sw, fh / sh], np.float32)
        return tuple(cv2.resize(f, (fw, fh), interpolation=cv2.INTER_LINEAR) * gain
                     for f in (seeds.flow_ab, seeds.flow_ba))  # type: ignore[return-value]

    def _confidence(self, a_rgb: np.ndarray, b_rgb: np.ndarray, flow: np.ndarray, error: np.ndarray,
                    xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """How far to trust each pixel of a key at an in-between: its flow comes back (visible in
        the other key) and lands on matching colours there."""
        s = self.settings
        warped = cv2.remap(b_rgb, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        diff = cv2.transform(cv2.absdiff(warped, a_rgb).astype(np.float32), np.full((1, 3), 1 / 3, np.float32))
        photo = cv2.boxFilter(diff, -1, (s.photo_window, s.photo_window))
        consistent = np.exp(-((error / s.consistency_px) ** 2))
        return (consistent * np.exp(-photo / s.photo_sigma)).astype(np.float32)

    def _flows_at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        b0, hit0, vis0 = self.splat0.splat(t)
        b1, hit1, vis1 = self.splat1.splat(1.0 - t)
        # Holes of one side from the other side under linear motion: F_t0 = -t/(1-t) F_t1.
        fill0 = (hit1 & ~hit0)[..., None]
        fill1 = (hit0 & ~hit1)[..., None]
        from1 = b1 * np.float32(-t / (1.0 - t))
        np.copyto(b1, b0 * np.float32(-(1.0 - t) / t), where=fill1)
        np.copyto(b0, from1, where=fill0)
        either = hit0 | hit1
        if not either.all():
            both = push_pull_fill(np.concatenate([b0, b1], axis=2), either)
            b0, b1 = both[..., :2], both[..., 2:]
        s = self.settings
        if s.flow_median:  # splat collisions leave single-pixel outliers: speckles in the frame
            b0 = cv2.medianBlur(np.ascontiguousarray(b0), s.flow_median)
            b1 = cv2.medianBlur(np.ascontiguousarray(b1), s.flow_median)
        w0, w1 = hit0 * vis0 + s.hole_weight, hit1 * vis1 + s.hole_weight
        if s.weight_blur:
            w0 = cv2.GaussianBlur(w0, (0, 0), s.weight_blur)
            w1 = cv2.GaussianBlur(w1, (0, 0), s.weight_blur)
        return b0, b1, w0, w1

    def _to_full(self, field: np.ndarray, multiply: bool) -> np.ndarray:
        if (self.fh, self.fw) == (self.h, self.w):
            return field
        up = cv2.resize(field, (self.w, self.h), interpolation=cv2.INTER_LINEAR)
        if multiply:
            up[..., 0] *= self.sx
            up[..., 1] *= self.sy
        return up

    def layers(self, t: float) -> FrameLayers:
        """Both keys warped to time t and the hand-made share of the start key's warp."""
        s = self.settings
        b0, b1, vis0, vis1 = self._flows_at(t)
        full0 = self._to_full(b0, True)
        full1 = self._to_full(b1, True)
        vis = self._to_full(np.dstack([vis0, vis1]), False)
        w0 = (1.0 - t) ** s.time_power * vis[..., 0]
        w1 = t ** s.time_power * vis[..., 1]
        warp0 = self._warp(self.start, full0)
        warp1 = self._warp(self.end, full1)
        share0 = w0 / (w0 + w1)
        if s.decisive > 0:
            # Where the two warped keys disagree (a line in one, paper in the other), lean to the
            # side with more weight rather than averaging into two half-dark ghost lines.
            diff = cv2.absdiff(warp0, warp1)
            if diff.ndim == 3:
                diff = diff[..., :3].max(axis=2) if diff.shape[2] > 4 else cv2.transform(
                    diff, np.full((1, diff.shape[2]), 1.0 / diff.shape[2], np.float32))
            gain = s.decisive / max(s.disagreement, 1e-3) / self.peak
            strength = np.clip(diff.astype(np.float32) * gain - s.decisive, 0.0, s.decisive)
            hard = (share0 > 0.5).astype(np.float32)
            if s.flip_occlusion:  # a variant: the other side wins where the warps disagree
                hard = 1.0 - hard
            share0 = share0 + (hard - share0) * strength
        if s.lean_power != 1.0:  # a variant: lean the whole blend towards one key
            share0 = np.power(np.clip(share0, 0.0, 1.0), np.float32(s.lean_power))
        return FrameLayers(warp0, warp1, share0.astype(np.float32), b0, b1, vis0, vis1)

    def frame(self, t: float) -> np.ndarray:
        layers = self.layers(t)
        warp0, warp1, share0 = layers.warp0, layers.warp1, layers.share0
        blend = self._learned_blend()
        if blend is not None:
            inputs = flow_blend.features(warp0, warp1, layers.conf0, layers.conf1, share0, t,
                                         layers.back0, layers.back1, flow_blend.net_size(self.fw, self.fh))
            share0 = blend.apply(inputs, share0, (self.w, self.h))
        if warp0.dtype == np.uint8:  # OpenCV's blend adds 1e-5 to its divisor: harmless in 8 bits
            return cv2.blendLinear(warp0, warp1, share0, 1.0 - share0)
        share0 = share0[..., None]
        return warp0 * share0 + warp1 * (1.0 - share0)

    def _learned_blend(self) -> flow_blend.LearnedBlend | None:
        """The learned blend when asked for and usable: 8-bit RGB keys only (it was trained on
        them); 16-bit and alpha keys take the hand-made blend."""
        s = self.settings
        if not s.learned or self.start.dtype != np.uint8 or self.start.shape[2] != 3:
            return None
        if self.flat_fraction < s.learned_min_flat:
            return None
        return flow_blend.shipped()

    def _warp(self, image: np.ndarray, back: np.ndarray) -> np.ndarray:
        """Sample `image` at (pixel + back flow), bilinear."""
        maps = back + self.full_grid
        out = cv2.remap(image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out if out.ndim == 3 else out[..., None]
