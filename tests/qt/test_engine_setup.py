"""The engine set-up dialog: two buttons, progress, cancel/pause, nothing started on its own."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox
from qt_helpers import PATIENCE_MS

from tooncrafter_studio.qt.dialogs.engine_setup import EngineSetupDialog
from tooncrafter_studio.setup import engine_env
from tooncrafter_studio.setup import engine_install as ei

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "setup"))
from hub_server import HubServer  # noqa: E402


@pytest.fixture
def env_dir(tmp_path, monkeypatch):
    folder = tmp_path / "engine-env"
    monkeypatch.setenv(engine_env.ENV_DIR_ENV, str(folder))
    monkeypatch.setenv(ei.NVIDIA_SMI_ENV, str(tmp_path / "no-nvidia-smi"))
    return folder


def _script(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


@pytest.mark.skipif(sys.platform == "win32", reason="the fake environment's python is a shell script")
def test_install_button_runs_the_plan_with_progress(qtbot, env_dir, monkeypatch):
    python = engine_env.env_python(env_dir)
    create = _script(f"import pathlib; p = pathlib.Path({str(python)!r}); p.parent.mkdir(parents=True); "
                     f"p.write_text('#!/bin/sh\\nexec {sys.executable} \"$@\"\\n'); p.chmod(0o755)")
    real_plan = ei.plan_install

    def plan(backend="auto", **kw):
        made = real_plan(backend, **kw)
        return dataclasses.replace(made, commands=(create, _script("print('Downloading torch (846.2MiB)')"),
                                                   _script("print('Installed 9 packages')")))

    monkeypatch.setattr(ei, "plan_install", plan)
    monkeypatch.setattr(ei, "check_reachable", lambda urls: None)
    monkeypatch.setattr(ei, "VERIFY_SCRIPT", "print('VERIFY {\"torch\": \"2.14.1+cpu\"}')")
    dialog = EngineSetupDialog()
    qtbot.addWidget(dialog)
    assert "Not installed" in dialog.engine.status.text() and "cpu build" in dialog.engine.status.text()
    assert engine_env.ready_env() is None  # opening the dialog installs nothing
    dialog.install_engine()
    with qtbot.waitSignal(dialog.changed, timeout=PATIENCE_MS):
        pass
    qtbot.waitUntil(lambda: dialog.job is None, timeout=PATIENCE_MS)
    assert engine_env.ready_env() is not None
    assert dialog.engine.status.text().startswith("Installed: cpu (cpu)")
    assert "Ready:" in dialog.engine.message.text()


def test_download_button_asks_with_the_size_then_downloads(qtbot, env_dir, monkeypatch):
    payload = os.urandom(2_500_000)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    with HubServer() as hub:
        hub.state.add("Doubiiu/ToonCrafter", "model.ckpt", payload)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        dialog = EngineSetupDialog()
        qtbot.addWidget(dialog)
        assert dialog.model.status.text().startswith("Not found") and hub.state.ranges == []
        asked = []
        assert dialog.download_model(confirm=lambda text: asked.append(text) and False) is None
        assert "2.5 MB" in asked[0] and "free" in asked[0] and hub.state.ranges == []
        dialog.download_model(confirm=lambda text: True)
        qtbot.waitUntil(lambda: dialog.job is None, timeout=PATIENCE_MS)
    from tooncrafter_studio.core.paths import user_models_dir

    assert (user_models_dir() / "model.ckpt").read_bytes() == payload
    assert "Downloaded and verified" in dialog.model.message.text()
    assert dialog.model.status.text().startswith("Found:")


def test_the_inspector_offers_the_set_up_where_the_engine_is_unavailable(qtbot, window, env_dir, project_folder):
    from tooncrafter_studio.engines.base import ProbeResult

    window.files.open_project(project_folder)
    inspector = window.inspector
    inspector.set_span(window.session.spans()[0])
    missing = ProbeResult(False, "The ToonCrafter engine needs torch, which is not installed: run "
                                 "`tooncrafter-studio engine install`.")
    inspector.set_engines(["flow", "tooncrafter"], {"flow": ProbeResult(True, "CPU"), "tooncrafter": missing})
    inspector._refresh_engine("tooncrafter")
    assert inspector.setup_button.isVisibleTo(inspector)
    inspector._refresh_engine("flow")
    assert not inspector.setup_button.isVisibleTo(inspector)
    inspector._refresh_engine("tooncrafter")
    with qtbot.waitSignal(inspector.setup_engine, timeout=PATIENCE_MS):
        inspector.setup_button.click()
    dialogs = [w for w in window.findChildren(EngineSetupDialog)]
    assert dialogs and dialogs[-1].isVisible()
    dialogs[-1].reject()
