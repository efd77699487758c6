"""One way to configure an engine: configure() checks names once, the CLI and the studio share the
builder and the cache, and redo-rejected / take labels / reservations behave the same everywhere."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_factories import BlendEngine, make_project

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.core.settings import Settings
from tooncrafter_studio.engines.base import Engine, EngineCapabilities, InterpolationResult, ProbeResult
from tooncrafter_studio.engines.crossfade import CrossfadeEngine
from tooncrafter_studio.engines.registry import register_engine, unregister_engine
from tooncrafter_studio.media import read_image
from tooncrafter_studio.pipeline.engines import EngineCache, build_engine, settings_options
from tooncrafter_studio.pipeline.jobs import redo_rejected_job, segment_job
from tooncrafter_studio.pipeline.runner import next_take_label, run_job
from tooncrafter_studio.project.commands import RemoveTake, SetFrameStatus
from tooncrafter_studio.project.project import Project
from tooncrafter_studio.project.resolve import key_spans

KEY = ("d0001", "d0009")


class OptionEngine(Engine):
    """Takes `model` and `strength`; counts configure calls; each seed gives another drawing."""

    id = "test-options"
    label = "Option test engine"
    capabilities = EngineCapabilities(seed_variants=True)
    options = ("model", "strength")
    configured_calls = 0

    def configure(self, params):
        super().configure(params)
        type(self).configured_calls += 1

    def probe(self) -> ProbeResult:
        model = getattr(self, "configured", {}).get("model")
        return ProbeResult(model != "missing", "the model file 'missing' does not exist")

    def interpolate(self, request, progress=None, cancel=None):
        shift = int(request.seed or 0) % 5 + 1
        a, b = request.start.astype(np.float32), request.end.astype(np.float32)
        frames = [np.roll(((1 - t) * a + t * b).round().astype(request.start.dtype), shift, axis=1)
                  for t in request.times]
        return InterpolationResult(frames, {"shift": shift})


@pytest.fixture(autouse=True)
def _engines():
    register_engine(OptionEngine.id, OptionEngine)
    register_engine("test-blend", BlendEngine)
    yield
    unregister_engine(OptionEngine.id)
    unregister_engine("test-blend")


def test_default_configure_refuses_unknown_names_clearly():
    engine = CrossfadeEngine()
    engine.configure({})
    with pytest.raises(InputError, match=r"Cross-fade engine has no option steps \(it takes none\)"):
        engine.configure({"steps": 4})
    with pytest.raises(InputError, match=r"no options bogus, other \(it takes model, strength\)"):
        build_engine(OptionEngine.id, {"bogus": 1, "other": 2})


def test_app_settings_reach_only_engines_that_take_them():
    defaults = settings_options(Settings(model_path="/m/model.ckpt", device="cpu"))
    assert defaults == {"memory": "auto", "model": "/m/model.ckpt", "device": "cpu"}
    assert build_engine(OptionEngine.id, {"strength": 2}, defaults).configured == {
        "model": "/m/model.ckpt", "strength": 2}
    assert build_engine("crossfade", {}, defaults).configured == {}  # no model file to hand to it


def test_tooncrafter_configure_forgets_earlier_options():
    pytest.importorskip("cv2")
    from tooncrafter_studio.engines.tooncrafter import ToonCrafterEngine

    engine = ToonCrafterEngine()
    engine.configure({"device": "cpu", "model": "/nowhere/model.ckpt"})
    assert "/nowhere/model.ckpt" in engine.probe().reason or "not installed" in engine.probe().reason
    engine.configure({"device": "cpu"})  # the user cleared the model path: it must not linger
    assert "/nowhere/model.ckpt" not in engine.probe().reason
    with pytest.raises(InputError, match="Unknown ToonCrafter option"):
        engine.configure({"stepz": 3})


def test_engine_cache_reconfigures_when_settings_change():
    cache = EngineCache()
    OptionEngine.configured_calls = 0
    first = cache.get(OptionEngine.id, {"strength": 1}, {"model": "a"})
    assert cache.get(OptionEngine.id, {"strength": 1}, {"model": "a"}) is first
    assert OptionEngine.configured_calls == 1  # same options: nothing to redo
    again = cache.get(OptionEngine.id, {"strength": 1}, {"model": "b"})
    assert again is first and first.configured == {"model": "b", "strength": 1}  # not stale
    cache.clear()
    assert cache.engines() == []


def test_generate_configures_its_engine_from_params(tmp_path, capsys):
    project = make_project(tmp_path)
    code = run_cli(["generate", str(project.folder), "--pair", "1:9", "--engine", OptionEngine.id,
                    "--param", "model=missing", "-q"])
    err = capsys.readouterr().err
    assert code == 3 and "the model file 'missing' does not exist" in err  # model= reached probe(): unavailable
    code = run_cli(["generate", str(project.folder), "--pair", "1:9", "--engine", OptionEngine.id,
                    "--param", "bogus=1", "-q"])
    assert code == 2 and "has no option bogus" in capsys.readouterr().err
    assert not Project.open(project.folder).shot.takes  # refused before any work
    code = run_cli(["generate", str(project.folder), "--pair", "1:9", "--engine", OptionEngine.id,
                    "--param", "model=here", "--param", "strength=3", "-q"])
    assert code == 0, capsys.readouterr().err
    (take,) = Project.open(project.folder).shot.takes.values()
    assert take.params["engine_params"] == {"model": "here", "strength": 3}


def test_generate_device_cpu_is_accepted_by_tooncrafter(tmp_path, capsys):
    pytest.importorskip("cv2")
    project = make_project(tmp_path)
    code = run_cli(["generate", str(project.folder), "--pair", "1:9", "--engine", "tooncrafter",
                    "--param", "device=cpu", "--param", f"model={tmp_path / 'none.ckpt'}", "-q"])
    err = capsys.readouterr().err
    assert code == 3 and "Unknown ToonCrafter option" not in err and "CUDA" not in err  # unavailable: resource
    assert "none.ckpt" in err or "not installed" in err


def test_redo_rejected_keeps_the_others_and_draws_a_variant(tmp_path):
    project = make_project(tmp_path)
    span = key_spans(project.shot)[0]
    first = run_job(segment_job(project, span, engine=OptionEngine.id, seed=1), project=project).take
    project.push(SetFrameStatus(first.id, [0], "accepted"))
    project.push(SetFrameStatus(first.id, [1], "rejected"))
    job = redo_rejected_job(project, span, seed=2, engine=OptionEngine.id)
    assert job.times == [first.frames[1].time] and job.offsets == [first.frames[1].offset]
    second = run_job(job, project=project).take
    assert [tf.offset for tf in second.frames] == [tf.offset for tf in first.frames]
    assert second.frames[0].file == first.frames[0].file and second.frames[0].status == "accepted"
    assert second.frames[2].file == first.frames[2].file and second.frames[2].status == "pending"
    assert second.frames[1].file.startswith(f"takes/{second.id}/") and second.frames[1].status == "pending"
    old = read_image(project.folder / first.frames[1].file)
    new = read_image(project.folder / second.frames[1].file)
    assert not np.array_equal(old, new)
    assert second.params["kept_from_take"] == first.id and second.label == "T2"
    project.push(SetFrameStatus(second.id, [0, 1, 2], "accepted"))
    with pytest.raises(InputError, match="nothing to redo"):
        redo_rejected_job(project, span)
    assert not project._reserved  # noqa: SLF001


def test_generate_redo_rejected_on_the_command_line(tmp_path, capsys):
    project = make_project(tmp_path)
    assert run_cli(["generate", str(project.folder), "--pair", "1:9", "--engine", OptionEngine.id,
                    "--seed", "1", "-q"]) == 0
    code = run_cli(["generate", str(project.folder), "--redo-rejected", "--engine", OptionEngine.id, "-q"])
    assert code == 2 and "No rejected frames" in capsys.readouterr().err
    assert run_cli(["review", str(project.folder), "reject", "5"]) == 0
    assert run_cli(["generate", str(project.folder), "--redo-rejected", "--engine", OptionEngine.id, "-q"]) == 0
    out = capsys.readouterr()
    assert "frames 9-17: no take yet" in out.err
    shot = Project.open(project.folder).shot
    segment = shot.segments[KEY]
    new, old = shot.takes[segment.active_take], shot.takes[segment.take_ids[0]]
    assert new.label == "T2" and [tf.offset for tf in new.frames] == [2, 4, 6]
    assert new.frames[1].file.startswith(f"takes/{new.id}/") and new.frames[0].file == old.frames[0].file
    assert run_cli(["review", str(project.folder), "reject", "3"]) == 0
    code = run_cli(["generate", str(project.folder), "--redo-rejected", "--engine", "crossfade", "-q"])
    assert code == 2 and "deterministic" in capsys.readouterr().err


def test_a_removed_newest_take_label_is_never_reused(tmp_path):
    project = make_project(tmp_path)
    for _ in range(3):
        run_job(segment_job(project, KEY), BlendEngine(), project=project)
    newest = project.shot.segments[KEY].take_ids[-1]
    assert project.shot.takes[newest].label == "T3"
    project.push(RemoveTake(newest))
    assert next_take_label(project, *KEY) == "T4"
    project.save()
    assert next_take_label(Project.open(project.folder), *KEY) == "T4"  # remembered in the file too
    project.undo()  # the take is back: still T4 next
    assert next_take_label(project, *KEY) == "T4"


def test_reservation_is_released_once_on_every_path(tmp_path):
    project = make_project(tmp_path)
    job = segment_job(project, KEY)
    assert job.take_id in project._reserved  # noqa: SLF001
    job.release()
    job.release()
    assert job.take_id not in project._reserved and job.reservation.released  # noqa: SLF001


def test_lenient_options_leave_out_what_another_engine_took():
    cache = EngineCache()
    engine = cache.get("crossfade", {"steps": 25, "memory": "low"}, strict=False)  # a segment switched engines
    assert engine.configured == {}
    with pytest.raises(InputError):
        cache.get("crossfade", {"steps": 25})


def test_a_redraw_identical_to_the_rejected_frame_is_reported(tmp_path):
    project = make_project(tmp_path)
    span = key_spans(project.shot)[0]
    first = run_job(segment_job(project, span, engine=OptionEngine.id, seed=1), project=project).take
    project.push(SetFrameStatus(first.id, [1], "rejected"))
    same = run_job(redo_rejected_job(project, span, seed=6, engine=OptionEngine.id), project=project)
    assert same.unchanged == [0]  # seeds 1 and 6 give the same variant: said, not hidden
    project.push(SetFrameStatus(same.take.id, [1], "rejected"))
    other = run_job(redo_rejected_job(project, span, seed=2, engine=OptionEngine.id), project=project)
    assert other.unchanged == []


def test_the_command_line_names_its_flags_where_the_studio_names_controls():
    from tooncrafter_studio.cli.main import with_flag_hints

    assert with_flag_hints("choose another folder or allow overwriting.") == \
        "choose another folder or allow overwriting (--overwrite)."
    assert "--device cpu" in with_flag_hints("ToonCrafter needs an NVIDIA GPU; set the device to CPU to run")
