from __future__ import annotations

import errno
import os

import pytest

from tooncrafter_studio.core import fsio, paths, settings
from tooncrafter_studio.core.errors import Cancelled, StudioError
from tooncrafter_studio.core.progress import CancelToken, ProgressEvent, StageReporter


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.txt"
    fsio.atomic_write_text(target, "old")
    fsio.atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    fsio.atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with fsio.atomic_open(target, "w") as handle:
            handle.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_full_disk_becomes_clear_error(tmp_path, monkeypatch):
    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StudioError, match="disk is full"):
        fsio.atomic_write_text(tmp_path / "b.txt", "data")
    assert not list(tmp_path.iterdir())


def test_a_file_where_a_folder_should_be_is_named(tmp_path):
    """`timing export shot notes.png/x.xdts` said "Could not write notes.png/x.xdts: File exists."."""
    blocker = tmp_path / "notes.png"
    blocker.write_bytes(b"x")
    for target in (blocker / "x.xdts", blocker / "deeper" / "x.xdts"):
        with pytest.raises(StudioError) as caught:
            fsio.atomic_write_text(target, "data")
        assert str(caught.value) == f"{blocker} is a file, not a folder: could not write {target}."
    assert blocker.read_bytes() == b"x"


def test_stage_reporter_counts_and_cancels():
    events: list[ProgressEvent] = []
    token = CancelToken()
    reporter = StageReporter(events.append, token, "denoise", 3)
    reporter.start()
    reporter.step()
    token.cancel()
    with pytest.raises(Cancelled):
        reporter.step()
    assert [(e.done, e.total) for e in events] == [(0, 3), (1, 3), (2, 3)]
    assert events[1].eta_s is not None


def test_settings_round_trip_and_damaged_file(tmp_path):
    path = tmp_path / "settings.json"
    s = settings.Settings(memory_mode="low")
    s.add_recent("/a")
    s.add_recent("/b")
    s.add_recent("/a")
    settings.save_settings(s, path)
    loaded = settings.load_settings(path)
    assert loaded.memory_mode == "low"
    assert loaded.recent_projects == ["/a", "/b"]
    path.write_text("{not json")
    assert settings.load_settings(path) == settings.Settings()


def test_model_search_order(tmp_path, monkeypatch):
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "model.ckpt").write_bytes(b"x")
    monkeypatch.setenv(paths.MODELS_ENV, str(env_dir))
    found, looked = paths.find_model()
    assert found == env_dir / "model.ckpt"
    explicit = tmp_path / "missing.ckpt"
    found, looked = paths.find_model(explicit)
    assert found is None and looked == [f"chosen model file: {explicit}"]
