"""The autoencoder decode: plain vs lean (bounded-memory) path, full-width VAE (fill-rule weights),
one 16-frame chunk, float32, CPU.

Each mode runs in a fresh child process; the figure is the peak RSS above the process's RSS just
before the decode (weights and inputs already resident), i.e. what the decode itself allocates.
Also prints the largest relative difference between the two outputs (should be ~1e-6).
Size: latent 16x20x32 (output 160x256) by default; BENCH_VAE_LATENT="40x64" for the real size
(needs ~25 GB RAM on the plain path in float32).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from tooncrafter_studio.diffusion.nets.autoencoder import Autoencoder
from tooncrafter_studio.diffusion.checks.verify_encoders import VAE_PREFIX, build_filled
mode, h, w, out_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ae = build_filled(Autoencoder, VAE_PREFIX)
g = torch.Generator().manual_seed(0)
z = torch.randn(1, 4, 16, h, w, generator=g)
refs = [torch.randn(1, c, 2, h * s, w * s, generator=g) for c, s in ((128, 8), (256, 4), (512, 2), (512, 1), (128, 8))]
def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
before = rss_kb()
start = time.perf_counter()
with torch.inference_mode():
    y = ae.decode(z, refs, lean=(mode == "lean"))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
np.save(out_path, y.numpy())
print(json.dumps({"seconds": seconds, "decode_peak_mb": (peak - before) / 1024, "output_mb": y.numel() * 4 / 2**20}))
"""


def _run_mode(mode: str, h: int, w: int, out: Path) -> dict:
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", CHILD, mode, str(h), str(w), str(out)], cwd=repo,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run() -> None:
    import numpy as np

    h, w = (int(v) for v in os.environ.get("BENCH_VAE_LATENT", "20x32").split("x"))
    print(f"full-width VAE decode, 16 frames, latent {h}x{w} -> {8 * h}x{8 * w} px, float32, CPU, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        figures = {}
        for mode in ("plain", "lean"):
            figures[mode] = _run_mode(mode, h, w, Path(tmp) / f"{mode}.npy")
            f = figures[mode]
            print(f"  {mode:5s}: {f['seconds']:.1f} s, decode peak {f['decode_peak_mb']:.0f} MB "
                  f"(output {f['output_mb']:.0f} MB)")
        plain, lean = (np.load(Path(tmp) / f"{m}.npy") for m in ("plain", "lean"))
    print(f"  lean/plain: time {figures['lean']['seconds'] / figures['plain']['seconds']:.2f}x, "
          f"decode peak {figures['lean']['decode_peak_mb'] / figures['plain']['decode_peak_mb']:.2f}x; "
          f"max |lean - plain| / max |plain| = {np.abs(lean - plain).max() / np.abs(plain).max():.1e}")


if __name__ == "__main__":
    run()
