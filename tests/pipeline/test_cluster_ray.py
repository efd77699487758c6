"""`generate --cluster ray`: a real private local Ray cluster (2 CPUs and 2 logical GPUs, started once for
the module with address="local", so it never attaches to a cluster already running on the machine) runs
the jobs; the project ends up with the same takes, bit for bit, as a local run; a worker killed mid-task
has its task retried with nothing lost or duplicated; cancel keeps what is done."""

from __future__ import annotations

import functools
import os
import signal
import threading
from pathlib import Path

import pytest
from cluster_factories import FailingBlend, MarkedBlend, tiny_tooncrafter
from pipeline_factories import make_project
from test_farm_export import KEYS, assert_same_takes, takes_by_segment
from waiting import wait_for

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.core.errors import Cancelled, InputError
from tooncrafter_studio.core.progress import CancelToken
from tooncrafter_studio.engines.registry import register_engine, unregister_engine
from tooncrafter_studio.pipeline.jobs import segment_job
from tooncrafter_studio.pipeline.runner import run_job
from tooncrafter_studio.pipeline.shared_project import commit_take
from tooncrafter_studio.project.project import Project
from tooncrafter_studio.project.resolve import key_spans

ray = pytest.importorskip("ray")
from tooncrafter_studio.pipeline import cluster_ray  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def cluster():
    """One private local cluster for the module: its start-up is most of this file's time."""
    path = os.environ.get("PYTHONPATH", "")
    address = os.environ.pop("RAY_ADDRESS", None)  # hermetic: a developer's cluster is not ours
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(HERE), path) if p)
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    yield
    ray.shutdown()
    os.environ["PYTHONPATH"] = path
    if address is not None:
        os.environ["RAY_ADDRESS"] = address


def _cli(capsys, *argv) -> str:
    code = run_cli([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _jobs(project: Project, engine: str, **kwargs) -> list:
    return [segment_job(project, span, engine=engine, seed=7, **kwargs) for span in key_spans(project.shot)]


def test_cluster_run_fills_the_project_like_a_local_run(cluster, tmp_path, capsys):
    local = make_project(tmp_path / "local", keys=KEYS, count=25)
    remote = make_project(tmp_path / "remote", keys=KEYS, count=25)
    _cli(capsys, "generate", local.folder, "--all", "--seed", "7", "--seeds", "2", "--engine", "flow", "-q")
    out = _cli(capsys, "generate", remote.folder, "--all", "--seed", "7", "--seeds", "2", "--engine", "flow",
               "--cluster", "ray", "-q")
    assert "12 takes saved" in out
    expected = takes_by_segment(local.folder)
    assert [[(s, label) for s, label, _ in takes] for takes in expected.values()] == [[(7, "T1"), (8, "T2")]] * 6
    assert_same_takes(takes_by_segment(remote.folder), expected)
    a, b = Project.open(local.folder).shot, Project.open(remote.folder).shot

    def provenance(take):  # the two projects' footage got different source ids
        keys = {end: {k: v for k, v in key.items() if k != "source"} for end, key in take.params["keys"].items()}
        return take.engine, {**take.params, "keys": keys}, take.seed, take.label, [f.file[-8:] for f in take.frames]

    def in_order(shot):
        return [provenance(shot.takes[t]) for segment in shot.segments.values() for t in segment.take_ids]

    assert in_order(a) == in_order(b) and len(in_order(a)) == 12

@pytest.mark.slow
def test_tiny_tooncrafter_on_the_cluster_matches_the_local_run(cluster, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    params = {"steps": 2, "device": "cpu"}
    local = make_project(tmp_path / "local", keys=(1, 5), count=5)
    remote = make_project(tmp_path / "remote", keys=(1, 5), count=5)
    engine = tiny_tooncrafter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray worker (OMP_NUM_THREADS=1): CPU sums in the same order
    try:
        for job in _jobs(local, "tooncrafter", params=params):
            commit_take(run_job(job, engine))
    finally:
        torch.set_num_threads(threads)
    jobs = _jobs(remote, "tooncrafter", params=params)
    for result in cluster_ray.run_on_ray(jobs, factories={"tooncrafter": tiny_tooncrafter}, workers=1):
        commit_take(result)
    expected = takes_by_segment(local.folder)
    assert len(expected) == 1
    assert_same_takes(takes_by_segment(remote.folder), expected)
    took = [t.engine for t in Project.open(remote.folder).shot.takes.values()]
    assert took[0]["engine"] == "tooncrafter" and took == [t.engine for t in Project.open(local.folder).shot.takes.values()]


def test_a_worker_killed_mid_task_loses_and_duplicates_nothing(cluster, tmp_path):
    marks = tmp_path / "marks"
    release = tmp_path / "release"  # every task waits for it: the killed worker is mid-task
    factory = functools.partial(MarkedBlend, str(marks), str(release))
    register_engine("test-marked", factory)
    try:
        local = make_project(tmp_path / "local", keys=KEYS, count=25)
        for job in _jobs(local, "test-marked"):
            commit_take(run_job(job, MarkedBlend(str(tmp_path / "local-marks"))))
    finally:
        unregister_engine("test-marked")
    remote = make_project(tmp_path / "remote", keys=KEYS, count=25)
    killed: list[int] = []

    def kill_first_worker() -> None:
        try:
            wait_for(lambda: marks.exists() and any(marks.iterdir()), "a worker to start a task")
            pid = int(sorted(marks.iterdir())[0].name.split("-")[0])
            os.kill(pid, signal.SIGKILL)  # mid-task: it waits for the release file
            killed.append(pid)
        finally:
            release.touch()

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    jobs = _jobs(remote, "test-marked")
    results = list(cluster_ray.run_on_ray(jobs, factories={"test-marked": factory}))
    killer.join()
    assert killed
    for result in results:
        commit_take(result)
    assert_same_takes(takes_by_segment(remote.folder), takes_by_segment(local.folder))
    assert len(Project.open(remote.folder).shot.takes) == 6
    pids = {int(p.name.split("-")[0]) for p in marks.iterdir()}
    assert len(list(marks.iterdir())) > 6 and killed[0] in pids  # the killed task ran again elsewhere


def test_cancel_keeps_finished_takes_and_frees_the_workers(cluster, tmp_path):
    project = make_project(tmp_path, keys=KEYS, count=25)
    release = tmp_path / "release"  # never given: all but the first job are still running at the cancel
    factory = functools.partial(MarkedBlend, str(tmp_path / "marks"))
    cancel = CancelToken()
    jobs = _jobs(project, "test-marked")
    for job in jobs[1:]:
        job.params["hold"] = str(release)
    committed = 0
    with pytest.raises(Cancelled):
        for result in cluster_ray.run_on_ray(jobs, factories={"test-marked": factory}, cancel=cancel):
            commit_take(result)
            committed += 1
            cancel.cancel()
    assert committed == 1 and len(Project.open(project.folder).shot.takes) == 1
    assert sorted(p.name for p in (project.folder / "takes").iterdir()) == \
        [next(iter(Project.open(project.folder).shot.takes))]
    try:  # the test engine needs no GPU: its workers held CPU slots, and the cancel gives them back
        wait_for(lambda: ray.available_resources().get("CPU", 0) == 2, "the cancelled tasks to free their CPUs")
    finally:
        release.touch()
    assert ray.available_resources().get("GPU", 0) == 2


def test_an_engine_error_on_a_worker_reads_as_the_engine_wrote_it(cluster, tmp_path):
    project = make_project(tmp_path, keys=(1, 9), count=9)
    jobs = _jobs(project, "test-marked", params={"fail": "bad value"})
    factory = functools.partial(FailingBlend, str(tmp_path / "marks"))
    with pytest.raises(InputError, match="this engine refuses fail='bad value'"):
        list(cluster_ray.run_on_ray(jobs, factories={"test-marked": factory}))
    takes = project.folder / "takes"
    assert not takes.exists() or list(takes.iterdir()) == []  # nothing written for a failed job


def test_cluster_address_is_decided_explicitly():
    assert cluster_ray.parse_address("ray", {}) == "local"  # a private cluster, never someone else's
    assert cluster_ray.parse_address("ray", {"RAY_ADDRESS": "10.0.0.5:6379"}) == "10.0.0.5:6379"
    assert cluster_ray.parse_address("ray:local", {"RAY_ADDRESS": "10.0.0.5:6379"}) == "local"
    assert cluster_ray.parse_address("ray:auto", {}) == "auto"
    assert cluster_ray.parse_address("ray://head:10001", {}) == "ray://head:10001"
    with pytest.raises(InputError, match="ray://HOST:PORT"):
        cluster_ray.parse_address("http://head")


def test_only_engines_that_need_a_gpu_ask_for_one():
    assert not cluster_ray.needs_gpu("flow")
    assert cluster_ray.needs_gpu("tooncrafter")
    assert not cluster_ray.needs_gpu("tooncrafter", {"device": "cpu"})
    assert not cluster_ray.needs_gpu("an-engine-only-the-workers-know")


def test_a_cluster_error_is_one_line_without_terminal_colours():
    error = RuntimeError("The actor died \x1b[36mray::EngineWorker.__init__()\x1b[39m (pid=1)\nTraceback ...")
    assert cluster_ray._first_line(error) == "The actor died ray::EngineWorker.__init__() (pid=1)"
    assert cluster_ray.ClusterError("x").resource  # exit 3: a farm may retry
