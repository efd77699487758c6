"""Farm and cluster throughput: a batch of 24 key pairs (flow engine, 320x240 drawings, 3 in-betweens
each) run locally, then on a local Ray cluster with 1 and with 2 workers (logical GPUs).

Figures: seconds for the batch and pairs per second; the cluster's overhead per task against the
local run ((cluster 1 worker - local) / 24: shipping keys and frames, the actor hop, and the
worker's start-up spread over the batch); the speed-up of 2 workers over 1 (bounded by the cores:
this machine has 2, shared with whatever else runs). Ray's own start-up is printed apart.
Also a farm export of the same batch as an OpenJD template (milliseconds).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

PAIRS = 24
SIZE = (240, 320)


def _project(folder: Path):
    from tooncrafter_studio.media import import_source, write_png
    from tooncrafter_studio.project.commands import SetKeys
    from tooncrafter_studio.project.project import new_project

    footage = folder / "footage"
    footage.mkdir(parents=True)
    frames = PAIRS * 4 + 1
    yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    for i in range(frames):
        image = np.full((*SIZE, 3), 250, np.uint8)
        cx, cy = 40 + (i % 8) * 30, 120 + 40 * np.sin(i / 3)
        image[(xx - cx) ** 2 + (yy - cy) ** 2 <= 900] = (30, 40, 160)
        write_png(footage / f"f.{i + 1:04d}.png", image)
    project = new_project(folder / "shot", import_source(footage).source, None, fps=24)
    project.push(SetKeys.at_frames(project.shot, list(range(1, frames + 1, 4)), True))
    project.save()
    return project


def _jobs(project):
    from tooncrafter_studio.pipeline.jobs import segment_job
    from tooncrafter_studio.project.resolve import key_spans

    return [segment_job(project, span, engine="flow", seed=1, count=3) for span in key_spans(project.shot)]


def run() -> None:
    try:
        import ray
    except ImportError:
        print("ray is not installed (pip install .[cluster]); skipped")
        return
    from tooncrafter_studio.engines.registry import create_engine
    from tooncrafter_studio.pipeline.cluster_ray import run_on_ray
    from tooncrafter_studio.pipeline.farm_formats import write_farm_job
    from tooncrafter_studio.pipeline.farm_plan import make_plan
    from tooncrafter_studio.pipeline.runner import run_job

    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp))
        engine = create_engine("flow")
        engine.load()
        run_job(_jobs(project)[0], engine, apply=False)  # warm caches
        start = time.perf_counter()
        for job in _jobs(project):
            run_job(job, engine, apply=False)
        local = time.perf_counter() - start
        print(f"local: {PAIRS} pairs in {local:.2f} s ({PAIRS / local:.2f} pairs/s, {local / PAIRS * 1000:.0f} ms/pair)")

        start = time.perf_counter()
        make_plan(project, None, seeds=1, seed=1, engine="flow")
        write_farm_job(make_plan(project, None, seeds=1, seed=1, engine="flow"), "openjd", Path(tmp) / "job")
        print(f"farm export (OpenJD, validated): {(time.perf_counter() - start) * 1000:.0f} ms for {PAIRS} tasks")

        os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                    os.environ.get("PYTHONPATH", "")])
        start = time.perf_counter()
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        print(f"ray start-up: {time.perf_counter() - start:.1f} s (once per session, not per batch)")
        try:
            list(run_on_ray(_jobs(project)[:2], workers=2))  # the workers' first import, not measured
            times = {}
            for workers in (1, 2):
                start = time.perf_counter()
                results = list(run_on_ray(_jobs(project), workers=workers))
                times[workers] = time.perf_counter() - start
                assert len(results) == PAIRS
                print(f"ray, {workers} worker{'s' if workers > 1 else ''}: {PAIRS} pairs in {times[workers]:.2f} s "
                      f"({PAIRS / times[workers]:.2f} pairs/s)")
            print(f"speed-up 2 workers vs 1: {times[1] / times[2]:.2f}x")
            print(f"cluster overhead per task vs local: {(times[1] - local) / PAIRS * 1000:.0f} ms "
                  f"(includes starting the worker for this batch)")
        finally:
            ray.shutdown()
