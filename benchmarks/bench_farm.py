"""Farm and cluster throughput: a batch of 24 key pairs (flow engine, 320x240 drawings, 3 in-betweens
each) run locally, then on a private local Ray cluster with 1 and with 2 workers (CPU slots: the flow
engine asks for no GPU).

Figures: seconds for the batch and pairs per second; the cluster's overhead per task against the
local run ((cluster 1 worker - local) / 24: shipping keys and frames, the actor hop, and the
worker's start-up spread over the batch); the speed-up of 2 workers over 1 (bounded by the cores:
this machine has 2, shared with whatever else runs). Ray's own start-up is printed apart.
Also a farm export of the same batch as an OpenJD template (milliseconds), and what the open app
pays to see farm takes (project/farm_takes.py): one poll of an unchanged project.json, and one poll
that merges the batch's 24 takes registered by "farm tasks" (CPU seconds: the machine is shared).
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


def _jobs(project, engine: str = "flow"):
    from tooncrafter_studio.pipeline.jobs import segment_job
    from tooncrafter_studio.project.resolve import key_spans

    return [segment_job(project, span, engine=engine, seed=1, count=3) for span in key_spans(project.shot)]


def _local(project, engine_id: str) -> float:
    from tooncrafter_studio.engines.registry import create_engine
    from tooncrafter_studio.pipeline.runner import run_job

    engine = create_engine(engine_id)
    engine.load()
    run_job(_jobs(project, engine_id)[0], engine)  # warm caches
    start = time.perf_counter()
    for job in _jobs(project, engine_id):
        run_job(job, engine)
    return time.perf_counter() - start


def _on_ray(project, engine_id: str, workers: int) -> float:
    from tooncrafter_studio.pipeline.cluster_ray import run_on_ray

    start = time.perf_counter()
    results = list(run_on_ray(_jobs(project, engine_id), workers=workers))
    assert len(results) == PAIRS
    return time.perf_counter() - start


def _farm_takes(project) -> None:
    """The open app's cost of seeing farm results: an idle poll, and merging a batch's takes."""
    from tooncrafter_studio.pipeline.runner import run_job
    from tooncrafter_studio.pipeline.shared_project import commit_take
    from tooncrafter_studio.project.farm_takes import FarmTakeWatcher
    from tooncrafter_studio.project.project import Project

    studio = Project.open(project.folder)
    watcher = FarmTakeWatcher(studio)
    polls = 2000
    start = time.process_time()
    for _ in range(polls):
        watcher.poll()
    idle = (time.process_time() - start) / polls
    print(f"app, idle poll of project.json (nothing new): {idle * 1e6:.0f} us CPU each, every 2 s")
    for i, job in enumerate(_jobs(Project.open(project.folder))):  # the farm registering its takes
        commit_take(run_job(job), task_id=f"bench-{i}")
    start = time.process_time()
    arrived = watcher.poll()
    print(f"app, merging {len(arrived.takes)} farm takes in one poll: {(time.process_time() - start) * 1000:.0f} ms CPU "
          f"('{arrived.message}')")


def run() -> None:
    try:
        import ray
    except ImportError:
        print("ray is not installed (pip install .[cluster]); skipped")
        return
    from tooncrafter_studio.pipeline.cluster_ray import run_on_ray
    from tooncrafter_studio.pipeline.farm_formats import write_farm_job
    from tooncrafter_studio.pipeline.farm_plan import make_plan

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp))
        # Ray workers run with OMP_NUM_THREADS=1; the local figures use the same, for a fair comparison
        os.environ["OMP_NUM_THREADS"] = "1"
        import cv2

        cv2.setNumThreads(1)
        local = {engine_id: _local(project, engine_id) for engine_id in ("flow", "crossfade")}
        print(f"local, flow: {PAIRS} pairs in {local['flow']:.2f} s ({PAIRS / local['flow']:.2f} pairs/s)")

        start = time.perf_counter()
        write_farm_job(make_plan(project, None, seeds=1, seed=1, engine="flow"), "openjd", Path(tmp) / "job")
        print(f"farm export (OpenJD, validated): {(time.perf_counter() - start) * 1000:.0f} ms for {PAIRS} tasks")
        _farm_takes(project)

        os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                    os.environ.get("PYTHONPATH", "")])
        start = time.perf_counter()
        ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
        print(f"ray start-up: {time.perf_counter() - start:.1f} s (once per session, not per batch)")
        try:
            list(run_on_ray(_jobs(project)[:2], workers=2))  # the workers' first imports, not measured
            times = {workers: _on_ray(project, "flow", workers) for workers in (1, 2)}
            for workers, seconds in times.items():
                print(f"ray, flow, {workers} worker{'s' if workers > 1 else ''}: {PAIRS} pairs in {seconds:.2f} s "
                      f"({PAIRS / seconds:.2f} pairs/s)")
            print(f"speed-up 2 workers vs 1: {times[1] / times[2]:.2f}x (2 cores, shared with the driver)")
            # crossfade does almost no work: what is left is the cluster path's own cost
            crossfade = _on_ray(project, "crossfade", 1)
            print(f"cluster overhead per task vs local (crossfade engine, 1 worker, worker start-up included): "
                  f"{(crossfade - local['crossfade']) / PAIRS * 1000:.0f} ms "
                  f"(local {local['crossfade'] / PAIRS * 1000:.0f} ms/pair, ray {crossfade / PAIRS * 1000:.0f} ms/pair)")
        finally:
            ray.shutdown()
