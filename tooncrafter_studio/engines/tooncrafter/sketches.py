"""Sketches for the ToonCrafter engine: where each lands among a pass's 16 frames, its hint image,
the notes for the user, and where the sketch encoder file is.

A pass between anchors at times t0 and t1 makes frames at t0 + (t1 − t0)·k/15. A sketch at time T
inside (t0, t1) guides frame k = round(15·(T − t0)/(t1 − t0)), the generated frame nearest to T;
when T falls between two generated frames the user is told which one it lands on and at what
time it would land exactly. With more than 14 in-betweens every pass whose span contains T gets
the sketch (the first pass makes the anchors of the later ones, so it must agree with it).
Frames without a sketch get a blank page (zero ink): the encoder runs for them too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import InputError
from ...core.paths import model_search_steps
from ..sketch import Sketch
from .fit import FitPlan
from .timing import GENERATED_FRAMES, TIME_EPS

SKETCH_ENCODER_FILE_NAMES = ("sketch_encoder.safetensors", "sketch_encoder-fp16.safetensors",
                             "sketch_encoder_fp16.safetensors", "sketch_encoder.ckpt")


@dataclass(frozen=True)
class Landing:
    """Where a sketch lands in a pass."""

    sketch: Sketch
    frame: int  # 1..14 of the pass's 16 frames
    frame_time: float  # the global time of that generated frame

    @property
    def exact(self) -> bool:
        return abs(self.frame_time - self.sketch.time) <= 1e-4


def landings(sketches: Sequence[Sketch], t0: float = 0.0, t1: float = 1.0,
             frames: int = GENERATED_FRAMES) -> list[Landing]:
    """The sketches strictly inside (t0, t1) and the frame of this pass each one guides."""
    out: list[Landing] = []
    last = frames - 1
    for sketch in sketches:
        if not (t0 + TIME_EPS < sketch.time < t1 - TIME_EPS):
            continue
        k = min(last - 1, max(1, round(last * (sketch.time - t0) / (t1 - t0))))
        out.append(Landing(sketch, k, t0 + (t1 - t0) * k / last))
    taken: dict[int, Landing] = {}
    for landing in out:  # two sketches on one frame: the nearer one wins
        other = taken.get(landing.frame)
        if other is None or abs(landing.sketch.time - landing.frame_time) < abs(other.sketch.time - other.frame_time):
            taken[landing.frame] = landing
    return [taken[k] for k in sorted(taken)]


def placement_notes(sketches: Sequence[Sketch], times: Sequence[float]) -> list[str]:
    """What the user should know before generating: sketches landing between generated frames
    (which frame they land on, the time that would land exactly), two sketches on one frame,
    sketches at no requested time."""
    notes: list[str] = []
    first = landings(sketches)
    kept = {id(landing.sketch) for landing in first}
    for landing in first:
        s = landing.sketch
        if not landing.exact:
            notes.append(f"sketch {s.name or ''} at t={s.time:.4f} falls between generated frames; it guides frame "
                         f"{landing.frame} of 15 (t={landing.frame_time:.4f}). Put it at t={landing.frame_time:.4f} "
                         f"(or use --sketch-snap) to land exactly.".replace("sketch  at", "sketch at"))
    for s in sketches:
        if id(s) not in kept:
            notes.append(f"sketch {s.name} at t={s.time:.4f} shares a generated frame with a nearer sketch and is "
                         "not used.")
        if not any(abs(s.time - t) <= 1e-4 for t in times):
            notes.append(f"sketch {s.name} at t={s.time:.4f} is at no requested in-between; it still guides the "
                         "motion around that time.")
    return notes


def snap_times(times: Sequence[float], sketches: Sequence[Sketch]) -> tuple[list[float], list[Sketch]]:
    """The timing adjusted so each sketch lands exactly: the sketch and the requested in-between at its
    time both move to the time of the generated frame it guides (one pass, up to 14 in-betweens)."""
    moved = {id(landing.sketch): landing.frame_time for landing in landings(sketches)}
    new_sketches = [Sketch(moved.get(id(s), s.time), s.image, s.name, s.sha256) for s in sketches]
    new_times = list(times)
    for s in sketches:
        if id(s) in moved:
            new_times = [moved[id(s)] if abs(t - s.time) <= 1e-4 else t for t in new_times]
    if len(set(round(t, 9) for t in new_times)) != len(new_times):
        raise InputError("Snapping the sketches to generated frames would put two in-betweens on one frame.")
    return sorted(new_times), new_sketches


def sketch_plane(sketch: Sketch, plan: FitPlan) -> np.ndarray:
    """(dst_h, dst_w) float32 ink of a sketch in the model frame: drawn over the key, it is placed
    like the keys (the same fit; bars are blank). A sketch of another size is first scaled to
    cover the key's frame and centred, as the keys' resize-and-crop does."""
    from ...diffusion.run.sketch_preprocess import fork_hint, ink

    plane = ink(sketch.image)
    if plane.shape != (plan.src_h, plan.src_w):
        plane = fork_hint(sketch.image, (plan.src_h, plan.src_w))[0]
    scaled = plan.to_model(plane[:, :, None])[:, :, 0]
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def pass_hints(sketches: Sequence[Sketch], t0: float, t1: float, plan: FitPlan,
               planes: dict[int, np.ndarray] | None = None) -> tuple[np.ndarray, list[Landing]]:
    """(16, 1, H, W) hints of one pass (blank pages where no sketch lands) and the landings."""
    hints = np.zeros((GENERATED_FRAMES, 1, plan.dst_h, plan.dst_w), dtype=np.float32)
    found = landings(sketches, t0, t1)
    for landing in found:
        key = id(landing.sketch)
        if planes is not None and key in planes:
            plane = planes[key]
        else:
            plane = sketch_plane(landing.sketch, plan)
            if planes is not None:
                planes[key] = plane
        hints[landing.frame, 0] = plane
    return hints, found


def find_sketch_encoder(explicit: str | os.PathLike | None = None,
                        model_path: Path | None = None) -> tuple[Path | None, list[str]]:
    """The sketch encoder file: the explicit one, else next to the model file, else in the model
    search folders. (file or None, places looked at)."""
    looked: list[str] = []
    if explicit:
        path = Path(explicit)
        looked.append(f"--sketch-encoder: {path}")
        return (path if path.is_file() else None), looked
    folders = [model_path.parent] if model_path is not None else []
    folders += [s.path if s.path.is_dir() else s.path.parent for s in model_search_steps() if s.path is not None]
    seen: set[Path] = set()
    for folder in folders:
        if folder in seen:
            continue
        seen.add(folder)
        looked.append(str(folder))
        for name in SKETCH_ENCODER_FILE_NAMES:
            if (folder / name).is_file():
                return folder / name, looked
    return None, looked


def provenance(options: Any, landed: Sequence[tuple[int, Landing]], encoder: dict[str, Any] | None) -> dict[str, Any]:
    """What a take records about its sketches: each file's identity and time, the pass and frame it
    guided, the strength, the context setting and the encoder file."""
    frames = []
    for sketch in options.sketches:
        entry = sketch.identity()
        entry["guided"] = [{"pass": index, "frame": landing.frame, "frame_time": round(landing.frame_time, 6)}
                           for index, landing in landed if landing.sketch is sketch]
        frames.append(entry)
    return {"scale": options.scale, "context": options.context, "encoder": encoder or {}, "sketches": frames}
