"""A cluster of several nodes (Ray's own test cluster: a head and worker nodes, private to this test)
in the shapes farms have: CPU-only nodes run the flow engine; ToonCrafter on a cluster without GPUs
and a cluster that loses its only worker node end in one line and exit 3, which a farm may retry."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import pytest
from cluster_factories import MarkedBlend
from pipeline_factories import make_project
from test_farm_export import KEYS
from waiting import wait_for

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.pipeline.jobs import segment_job
from tooncrafter_studio.pipeline.shared_project import commit_take
from tooncrafter_studio.project.project import Project
from tooncrafter_studio.project.resolve import key_spans

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
from tooncrafter_studio.pipeline import cluster_ray  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def cpu_cluster():
    """A head that runs nothing and one worker node with 2 CPUs and no GPU."""
    path = os.environ.get("PYTHONPATH", "")
    address = os.environ.pop("RAY_ADDRESS", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(HERE), path) if p)
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "num_gpus": 0, "include_dashboard": False})
    node = cluster.add_node(num_cpus=2, num_gpus=0)
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    yield cluster, node
    ray.shutdown()
    cluster.shutdown()
    os.environ["PYTHONPATH"] = path
    if address is not None:
        os.environ["RAY_ADDRESS"] = address


def test_the_flow_engine_runs_on_cpu_only_workers(cpu_cluster, tmp_path, capsys):
    project = make_project(tmp_path, keys=KEYS, count=25)
    code = run_cli(["generate", str(project.folder), "--all", "--seed", "7", "--engine", "flow", "--cluster", "ray",
                    "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "6 takes saved" in out and len(Project.open(project.folder).shot.takes) == 6


def test_tooncrafter_on_a_cluster_without_gpus_is_one_line_and_exit_3(cpu_cluster, tmp_path, capsys):
    project = make_project(tmp_path, keys=(1, 9), count=9)
    code = run_cli(["generate", str(project.folder), "--pair", "1:9", "--engine", "tooncrafter", "--cluster", "ray"])
    _out, err = capsys.readouterr()
    assert code == 3 and err.count("\n") == 1 and "no GPUs for tooncrafter" in err, err


def test_losing_the_only_node_ends_with_a_cluster_error(cpu_cluster, tmp_path):
    cluster, node = cpu_cluster
    marks = tmp_path / "marks"
    # every task waits for a release that never comes: the node is removed while one certainly runs
    factory = functools.partial(MarkedBlend, str(marks), str(tmp_path / "release"))
    project = make_project(tmp_path, keys=KEYS, count=25)
    jobs = [segment_job(project, span, engine="test-marked", seed=7) for span in key_spans(project.shot)]
    lost: list[bool] = []

    def remove_the_node_mid_task() -> None:
        wait_for(lambda: marks.exists() and any(marks.iterdir()), "a task to start on the node")
        cluster.remove_node(node, allow_graceful=False)
        lost.append(True)

    remover = threading.Thread(target=remove_the_node_mid_task, daemon=True)
    remover.start()
    kept = 0
    with pytest.raises(cluster_ray.ClusterError) as caught:
        for result in cluster_ray.run_on_ray(jobs, factories={"test-marked": factory}):
            commit_take(result)
            kept += 1
    remover.join()
    assert lost and caught.value.resource  # exit 3 in the CLI (shown by the test above)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(("The Ray cluster", "test-marked")), caught.value
    assert len(Project.open(project.folder).shot.takes) == kept < 6  # what was made is kept
