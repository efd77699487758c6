"""Check our implementation against the reference vectors of the original code.

    python -m tooncrafter_studio.diffusion.checks.verify VECTOR_DIR [--only FILE ...] [--tolerance REL]

For every vector file in VECTOR_DIR that has a registered checker, runs our modules on the stored
inputs (weights by the fill rule, float32, CPU) and prints, per file and per array, the max absolute
error and the error relative to max |reference|. Exits 1 if any array is beyond tolerance, 2 on
bad usage or when no known file is found.

Checkers live in `verify_<area>.py` modules beside this one (found automatically); each registers
itself for one file name with `@register("name.npz")` and returns a list of `Comparison`s, usually
built with `compare()` and `compare_probe()`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Single forward passes: max |Δ| <= 1e-5 · max |ref| (vectors/README §4).
DEFAULT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Comparison:
    name: str
    max_abs: float
    relative: float  # max |Δ| / reference scale
    tolerance: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.relative)) and self.relative <= self.tolerance


Checker = Callable[[Path], list[Comparison]]
CHECKERS: dict[str, Checker] = {}


def register(filename: str) -> Callable[[Checker], Checker]:
    def wrap(func: Checker) -> Checker:
        CHECKERS[filename] = func
        return func

    return wrap


def to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.dtype.is_floating_point:
            value = value.double()
        value = value.numpy()
    return np.asarray(value)


def compare(name: str, ours, reference, tolerance: float = DEFAULT_TOLERANCE, scale: float | None = None) -> Comparison:
    """Max |ours − reference|, relative to `scale` (default max |reference|). Shapes must agree;
    integer arrays must agree exactly (pass tolerance 0)."""
    a = to_numpy(ours).astype(np.float64)
    b = np.asarray(reference).astype(np.float64)
    if a.shape != b.shape:
        return Comparison(name, float("inf"), float("inf"), tolerance, f"shape {a.shape} != {b.shape}")
    if a.size == 0:
        return Comparison(name, 0.0, 0.0, tolerance)
    max_abs = float(np.abs(a - b).max())
    if scale is None:
        scale = float(np.abs(b).max())
    relative = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    return Comparison(name, max_abs, relative, tolerance)


def tensor_stats(value) -> np.ndarray:
    """[mean, std (unbiased), mean |x|, min, max] in float64, as the probes store them."""
    a = to_numpy(value).astype(np.float64).ravel()
    return np.array([a.mean(), a.std(ddof=1), np.abs(a).mean(), a.min(), a.max()])


def compare_probe(name: str, ours, archive, key: str, tolerance: float = DEFAULT_TOLERANCE) -> list[Comparison]:
    """Compare a tensor with a stored probe `key/{shape,stats,head}`; stats and head are relative to the
    reference tensor's max |x| (from its stats)."""
    ref_shape = tuple(int(s) for s in archive[f"{key}/shape"])
    ours_np = to_numpy(ours)
    if tuple(ours_np.shape) != ref_shape:
        return [Comparison(f"{name} shape", float("inf"), float("inf"), tolerance, f"{ours_np.shape} != {ref_shape}")]
    ref_stats = archive[f"{key}/stats"]
    scale = float(max(abs(ref_stats[3]), abs(ref_stats[4])))
    ref_head = archive[f"{key}/head"]
    results = [
        compare(f"{name} stats", tensor_stats(ours_np), ref_stats, tolerance, scale),
        compare(f"{name} head", ours_np.ravel()[: ref_head.size], ref_head, tolerance, scale),
    ]
    return results


def load_checkers() -> dict[str, Checker]:
    """Import every `verify_*` module of this package so that they register their checkers."""
    package = Path(__file__).parent
    for info in pkgutil.iter_modules([str(package)]):
        if info.name.startswith("verify_"):
            importlib.import_module(f"{__package__}.{info.name}")
    # Under `python -m` this file runs as __main__; the checkers registered with the imported copy.
    return importlib.import_module(f"{__package__}.verify").CHECKERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tooncrafter_studio.diffusion.checks.verify", description=__doc__.split("\n")[0])
    parser.add_argument("vector_dir", type=Path)
    parser.add_argument("--only", nargs="*", default=None, help="file names (with or without .npz) to check")
    parser.add_argument("--tolerance", type=float, default=None, help="override every relative tolerance")
    args = parser.parse_args(argv)
    out = sys.stdout

    if not args.vector_dir.is_dir():
        sys.stderr.write(f"error: {args.vector_dir} is not a folder of vector files.\n")
        return 2
    checkers = load_checkers()
    wanted = None if args.only is None else {n if n.endswith((".npz", ".json")) else f"{n}.npz" for n in args.only}
    present = sorted(p.name for p in args.vector_dir.iterdir() if p.suffix in (".npz", ".json"))
    for name in present:
        if name not in checkers and name.endswith(".npz"):
            out.write(f"{name}: skipped (no checker registered)\n")
    todo = [n for n in present if n in checkers and (wanted is None or n in wanted)]
    if not todo:
        sys.stderr.write(f"error: no known vector file in {args.vector_dir}.\n")
        return 2

    failed = 0
    for name in todo:
        start = time.perf_counter()
        try:
            results = checkers[name](args.vector_dir / name)
        except Exception as exc:  # report and go on with the other files
            out.write(f"{name}: ERROR {type(exc).__name__}: {exc}\n")
            failed += 1
            continue
        if args.tolerance is not None:
            results = [Comparison(r.name, r.max_abs, r.relative, args.tolerance, r.note) for r in results]
        bad = [r for r in results if not r.ok]
        failed += bool(bad)
        out.write(f"{name}: {'FAIL' if bad else 'ok'} ({len(results)} arrays, {time.perf_counter() - start:.1f} s)\n")
        for r in results:
            flag = "ok  " if r.ok else "FAIL"
            note = f"  {r.note}" if r.note else ""
            out.write(f"  {flag} {r.name:<48} max|d| {r.max_abs:.3e}  rel {r.relative:.3e}  (tol {r.tolerance:.0e}){note}\n")
        out.flush()
    out.write(f"{len(todo) - failed} of {len(todo)} files within tolerance\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
