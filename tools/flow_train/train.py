"""Train the flow engine's learned blend on generated cartoon clips and export it as ONNX.

    PYTHONPATH=. nice python -m tools.flow_train     # everything: ~15 min of crops, 14 of training

1. Clips from our generator (cartoon.py), seeds TRAIN_SEEDS (never the shared eval clips).
2. The engine itself (learned blend off) gives, per in-between, the two warps, the hand-made share
   and the network's input features (flow_blend.features, the very function inference uses);
   crops are cut where the warps disagree or the hand-made frame is wrong.
3. A tiny three-scale CNN (torch, CPU) predicts a share-logit correction at half resolution; the
   loss is L1 of the blended full-resolution frame against the truth.
4. The weights are written as an ONNX graph (onnx.helper; OpenCV's DNN runs it) to
   tooncrafter_studio/engines/flow/blend.onnx.
Training needs torch and onnx (the `tooncrafter` and `flow-train` extras); the engine needs neither.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from tooncrafter_studio.engines.flow import blend as flow_blend
from tooncrafter_studio.engines.flow.warp import SegmentInterpolator, settings_for

from .cartoon import make_clip

log = logging.getLogger("flow_train")
REPO = Path(__file__).resolve().parents[2]
MODEL_PATH = REPO / "tooncrafter_studio" / "engines" / "flow" / flow_blend.MODEL_FILE
TRAIN_SEEDS = range(1000, 1320)
VAL_SEEDS = range(5000, 5040)  # our tuning set (scored while choosing settings)
TEST_SEEDS = range(9000, 9060)  # held out: scored once, at the end
WIDTH = 16  # hidden channels per layer
CHUNK = 40  # clips per cached part of the crops
NET_CROP = 48  # network-resolution crop; the full-resolution crop is twice that
MARGIN = 12  # network pixels at each crop border left out of the loss (zero padding there)


def extract(seeds, crops_per_frame: int = 4, max_frames: int = 3):
    """Training crops: features (N,C,48,48) f16; warps and truth (N,96,96,9) u8; share (N,96,96) f16.
    Each clip's crops depend only on its seed (so sets can be extracted in parts)."""
    feats, images, shares = [], [], []
    settings = settings_for("best")
    full = 2 * NET_CROP
    for n, seed in enumerate(seeds):
        frames, _ = make_clip(seed)
        rng = np.random.default_rng(seed + 7)
        k = len(frames) - 1
        segment = SegmentInterpolator(frames[0], frames[-1], settings)
        picks = rng.choice(np.arange(1, k), size=min(max_frames, k - 1), replace=False)
        for i in picks:
            t = i / k
            layers = segment.layers(t)
            size = flow_blend.net_size(segment.fw, segment.fh)
            x = flow_blend.features(layers.warp0, layers.warp1, layers.conf0, layers.conf1, layers.share0,
                                    t, layers.back0, layers.back1, size)[0]
            gt = frames[i]
            blend = layers.warp1 + layers.share0[..., None] * (layers.warp0.astype(np.float32) - layers.warp1)
            err = np.abs(blend - gt).sum(axis=2) + 0.5 * cv2.absdiff(layers.warp0, layers.warp1).sum(axis=2)
            err = cv2.resize(err, (size[0], size[1]), interpolation=cv2.INTER_AREA)
            h, w = err.shape
            valid = err[: h - NET_CROP, : w - NET_CROP]
            cum = np.cumsum(valid.ravel() + 1e-3)
            for c in range(crops_per_frame):
                if c < crops_per_frame // 2:
                    flat = int(np.searchsorted(cum, rng.random() * cum[-1]))
                    y, x0 = divmod(flat, valid.shape[1])
                    y = max(0, y - int(rng.integers(0, NET_CROP)))
                    x0 = max(0, x0 - int(rng.integers(0, NET_CROP)))
                else:
                    y, x0 = int(rng.integers(0, h - NET_CROP)), int(rng.integers(0, w - NET_CROP))
                feats.append(x[:, y:y + NET_CROP, x0:x0 + NET_CROP].astype(np.float16))
                fy, fx = 2 * y, 2 * x0
                images.append(np.dstack([layers.warp0[fy:fy + full, fx:fx + full],
                                         layers.warp1[fy:fy + full, fx:fx + full], gt[fy:fy + full, fx:fx + full]]))
                shares.append(layers.share0[fy:fy + full, fx:fx + full].astype(np.float16))
        if n % 40 == 0:
            log.info("extracted %d/%d clips, %d crops", n + 1, len(seeds), len(feats))
    return np.stack(feats), np.stack(images), np.stack(shares)


def build_model():
    """Three scales (1, 1/2, 1/4 of the network resolution; averaging down, nearest up, skip
    concatenations): wide context for little compute. Dilated convolutions would be simpler but
    train several times slower on CPU."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    w = WIDTH

    class BlendNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.e1 = nn.Conv2d(flow_blend.CHANNELS, w, 3, padding=1)
            self.e2 = nn.Conv2d(w, w, 3, padding=1)
            self.e3 = nn.Conv2d(w, w, 3, padding=1)
            self.e4 = nn.Conv2d(w, w, 3, padding=1)
            self.d2 = nn.Conv2d(2 * w, w, 3, padding=1)
            self.out = nn.Conv2d(2 * w, 1, 3, padding=1)
            nn.init.zeros_(self.out.weight)  # start from the hand-made blend exactly
            nn.init.zeros_(self.out.bias)

        def forward(self, x):
            e1 = F.relu(self.e1(x))
            e2 = F.relu(self.e2(F.avg_pool2d(e1, 2)))
            e3 = F.relu(self.e3(F.avg_pool2d(e2, 2)))
            e4 = F.relu(self.e4(e3))
            d2 = F.relu(self.d2(torch.cat([F.interpolate(e4, scale_factor=2, mode="nearest"), e2], 1)))
            return self.out(torch.cat([F.interpolate(d2, scale_factor=2, mode="nearest"), e1], 1))

    torch.manual_seed(0)
    return BlendNet()


def blended(model, x, images, share):
    """The full-resolution frame the engine makes from the network's output (torch version of
    flow_blend.LearnedBlend.apply)."""
    import torch
    import torch.nn.functional as F

    # As the engine does: the logit correction is upsampled, then added to the hand-made logit.
    delta = F.interpolate(model(x)[:, :1], scale_factor=2, mode="bilinear", align_corners=False)[:, 0]
    share = share.clamp(1e-4, 1 - 1e-4)
    s = torch.sigmoid(torch.log(share / (1 - share)) + delta)[:, None]
    w0, w1 = images[:, 0:3], images[:, 3:6]
    return w1 + s * (w0 - w1)


def train(data, minutes: float = 12.0, batch: int = 16):
    import torch

    torch.set_num_threads(1)  # faster than 2 on a busy 2-core machine
    feats, images, shares = data
    x_all = torch.from_numpy(feats.astype(np.float32))
    img_all = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    share_all = torch.from_numpy(shares.astype(np.float32))
    n = len(x_all)
    held = np.arange(n) % 10 == 0  # a tenth of the crops to watch for overfitting
    train_idx, check_idx = np.flatnonzero(~held), np.flatnonzero(held)
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    m = 2 * MARGIN

    def loss_of(idx):
        pred = blended(model, x_all[idx], img_all[idx], share_all[idx])
        gt = img_all[idx, 6:9]
        return (pred - gt)[:, :, m:-m, m:-m].abs().mean()

    deadline = time.monotonic() + minutes * 60
    rng = np.random.default_rng(1)
    epoch = 0
    while time.monotonic() < deadline:
        perm = rng.permutation(train_idx)
        model.train()
        for start in range(0, len(perm) - batch + 1, batch):
            idx = perm[start:start + batch]
            loss = loss_of(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if time.monotonic() > deadline:
                break
        epoch += 1
        if epoch % 5 == 0:
            for group in opt.param_groups:
                group["lr"] *= 0.7
        with torch.no_grad():
            model.eval()
            check = float(np.mean([loss_of(check_idx[i:i + 64]).item() for i in range(0, len(check_idx), 64)]))
            base = float(np.mean([_base_loss(img_all[check_idx[i:i + 64]], share_all[check_idx[i:i + 64]], m)
                                  for i in range(0, len(check_idx), 64)]))
        log.info("epoch %d: check L1 %.5f (hand-made blend %.5f)", epoch, check, base)
    return model


def _base_loss(images, share, m):
    s = share[:, None]
    pred = images[:, 3:6] + s * (images[:, 0:3] - images[:, 3:6])
    return float((pred - images[:, 6:9])[:, :, m:-m, m:-m].abs().mean())


def to_onnx(model) -> bytes:
    """The trained network as an ONNX graph (Conv, Relu, AveragePool, Resize, Concat) that
    OpenCV's DNN module reads."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def conv(name, src, relu=True):
        layer = getattr(model, name)
        inits.extend([numpy_helper.from_array(layer.weight.detach().numpy().astype(np.float32), name + "_w"),
                      numpy_helper.from_array(layer.bias.detach().numpy().astype(np.float32), name + "_b")])
        nodes.append(helper.make_node("Conv", [src, name + "_w", name + "_b"], [name], pads=[1, 1, 1, 1],
                                      kernel_shape=[3, 3]))
        if not relu:
            return name
        nodes.append(helper.make_node("Relu", [name], [name + "_r"]))
        return name + "_r"

    def pool(src):
        nodes.append(helper.make_node("AveragePool", [src], [src + "_p"], kernel_shape=[2, 2], strides=[2, 2]))
        return src + "_p"

    def up(src):
        nodes.append(helper.make_node("Resize", [src, "roi", "scales"], [src + "_u"], mode="nearest",
                                      coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
        return src + "_u"

    def cat(a, b, name):
        nodes.append(helper.make_node("Concat", [a, b], [name], axis=1))
        return name

    inits += [numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
              numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    e1 = conv("e1", "input")
    e2 = conv("e2", pool(e1))
    e3 = conv("e3", pool(e2))
    e4 = conv("e4", e3)
    d2 = conv("d2", cat(up(e4), e2, "c2"))
    out = conv("out", cat(up(d2), e1, "c1"), relu=False)
    graph = helper.make_graph(
        nodes, "flow_blend",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, flow_blend.CHANNELS, None, None])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)],
                                    producer_name="tooncrafter_studio tools/flow_train")
    model_proto.ir_version = 7
    return model_proto.SerializeToString()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=14.0, help="training wall-clock budget")
    ap.add_argument("--clips", type=int, default=len(TRAIN_SEEDS))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/flow_train_cache"), help="folder for extracted crops")
    ap.add_argument("--extract-only", action="store_true")
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    a = ap.parse_args(argv)
    a.cache.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cv2.setRNGSeed(0)
    seeds = list(TRAIN_SEEDS)[: a.clips]
    parts = []
    for start in range(0, len(seeds), CHUNK):  # cached in parts: an interrupted run resumes
        part = a.cache / f"crops_{seeds[start]}_{len(seeds[start:start + CHUNK])}.npz"
        if not part.exists():
            data = extract(seeds[start:start + CHUNK])
            np.savez(part, feats=data[0], images=data[1], shares=data[2])
        with np.load(part) as z:
            parts.append((z["feats"], z["images"], z["shares"]))
        log.info("crops of clips %d-%d ready", start, start + CHUNK - 1)
    data = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
    log.info("%d crops from %d clips", len(data[0]), len(seeds))
    if a.extract_only:
        return
    model = train(data, a.minutes)
    a.out.write_bytes(to_onnx(model))
    log.info("wrote %s (%d parameters)", a.out, sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main()
