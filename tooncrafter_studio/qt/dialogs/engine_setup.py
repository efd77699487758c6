"""The "ToonCrafter engine" dialog: install the engine's torch and download the model, two buttons.

Both run in a background thread with a progress bar and a Cancel (Pause for the download, which
continues where it stopped next time). Nothing starts until a button is pressed; the download shows
its size and the free disk space and asks first.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThread, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import Cancelled, StudioError
from ...core.paths import find_model, user_models_dir
from ...core.progress import CancelToken, ProgressEvent
from ...setup import engine_install, model_download
from ...setup.engine_env import ready_env

log = logging.getLogger(__name__)


class _Job(QThread):
    """Runs fn(progress, cancel) off the UI thread; results come back as queued signals."""

    progressed = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)

    def __init__(self, fn: Callable[[Callable[[ProgressEvent], None], CancelToken], Any], parent: QWidget) -> None:
        super().__init__(parent)
        self.fn = fn
        self.cancel = CancelToken()

    def run(self) -> None:
        try:
            result = self.fn(self.progressed.emit, self.cancel)
        except Cancelled as exc:
            self.cancelled.emit(str(exc))
        except StudioError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: say it, keep the app alive
            log.exception("Engine set-up failed")
            self.failed.emit(f"Unexpected error: {type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(result)


class _Section(QGroupBox):
    def __init__(self, title: str, button: str) -> None:
        super().__init__(title)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.button = QPushButton(button)
        self.stop = QPushButton("Cancel")
        self.stop.setVisible(False)
        self.bar = QProgressBar()
        self.bar.setVisible(False)
        self.message = QLabel()
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.button)
        buttons.addWidget(self.stop)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.message)

    def running(self, on: bool) -> None:
        self.button.setEnabled(not on)
        self.stop.setVisible(on)
        self.bar.setVisible(on)

    def show_progress(self, event: ProgressEvent) -> None:
        if event.total:
            scale = 1000 / event.total
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(event.done * scale))
        else:
            self.bar.setRange(0, 0)
        if event.message:
            eta = f" — about {int(event.eta_s // 60)} min {int(event.eta_s % 60)} s left" if event.eta_s else ""
            self.message.setText(event.message + eta)


class EngineSetupDialog(QDialog):
    """Install the engine environment and download the model. `changed` fires after either."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None, model_setting: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("ToonCrafter engine")
        self.model_setting = model_setting
        self.job: _Job | None = None
        self.engine = _Section("1. The engine (PyTorch for your GPU)", "Install the ToonCrafter engine")
        self.model = _Section("2. The model (about 10 GB, from Hugging Face Doubiiu/ToonCrafter)", "Download model…")
        self.engine.button.clicked.connect(self.install_engine)
        self.model.button.clicked.connect(self.download_model)
        self.engine.stop.clicked.connect(self.stop)
        self.model.stop.clicked.connect(self.stop)
        self.model.stop.setText("Pause")
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.engine)
        layout.addWidget(self.model)
        layout.addWidget(close)
        self.refresh()

    # -- state -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        env = ready_env()
        if env is not None:
            self.engine.status.setText(f"Installed: {env.description}.")
            self.engine.button.setText("Check / repair the engine")
        else:
            try:
                plan = engine_install.plan_install("auto")
                self.engine.status.setText(f"Not installed. For this computer ({plan.machine.describe()}): "
                                           f"torch {plan.variant} build, a few GB, into {plan.env_dir}.")
            except StudioError as exc:
                self.engine.status.setText(str(exc))
                self.engine.button.setEnabled(False)
        found, _looked = find_model(None, self.model_setting)
        if found is not None:
            self.model.status.setText(f"Found: {found}")
        else:
            self.model.status.setText(f"Not found. Downloads go to {user_models_dir()}. Nothing is downloaded "
                                      "unless you press the button.")

    def _start(self, section: _Section, fn, on_success: Callable[[Any], None]) -> _Job:
        job = _Job(fn, self)
        job.progressed.connect(section.show_progress)
        job.succeeded.connect(lambda result: (section.running(False), on_success(result), self.refresh(),
                                              self.changed.emit()))
        job.failed.connect(lambda text: (section.running(False), section.message.setText(text)))
        job.cancelled.connect(lambda text: (section.running(False), section.message.setText(text)))
        job.finished.connect(lambda: setattr(self, "job", None))
        section.running(True)
        section.message.setText("")
        self.job = job
        job.start()
        return job

    def stop(self) -> None:
        if self.job is not None:
            self.job.cancel.cancel()

    def busy(self) -> bool:
        return self.job is not None and self.job.isRunning()

    # -- the two buttons -------------------------------------------------------------------------
    def install_engine(self, backend: str = "auto") -> _Job | None:
        if self.busy():
            return None
        try:
            plan = engine_install.plan_install(backend)
        except StudioError as exc:
            self.engine.message.setText(str(exc))
            return None
        log.info("Installing the ToonCrafter engine:\n%s", plan.describe())
        return self._start(self.engine, lambda progress, cancel: engine_install.run_install(plan, progress, cancel),
                           lambda env: self.engine.message.setText(f"Ready: {env.description}."))

    def download_model(self, confirm: Callable[[str], bool] | None = None) -> _Job | None:
        if self.busy():
            return None
        try:
            info = model_download.fetch_info()
            target = user_models_dir()
            model_download.check_free_space(info, target)
        except StudioError as exc:
            self.model.message.setText(str(exc))
            return None
        have = model_download.partial_bytes(info, target)
        free = shutil.disk_usage(target).free
        question = (f"Download {info.filename} from {info.repo}: {model_download.format_size(info.size)}"
                    + (f" ({model_download.format_size(have)} already here, continuing)" if have else "")
                    + f"?\n\nInto {target} ({model_download.format_size(free)} free). "
                    "You can pause and continue later.")
        ask = confirm or (lambda text: QMessageBox.question(self, "Download the model", text)
                          == QMessageBox.StandardButton.Yes)
        if not ask(question):
            return None
        return self._start(self.model, lambda progress, cancel: model_download.download(info, target, progress, cancel),
                           self._downloaded)

    def _downloaded(self, path) -> None:
        self.model.message.setText(f"Downloaded and verified: {path}")
        if model_download.convert_command(path, path) is None:
            return  # no torch yet: converting is offered once the engine is installed (`models convert`)
        if QMessageBox.question(self, "Convert the model", f"Convert {path.name} to fp16 safetensors (half the "
                                "size, loads faster)? The original is kept.") == QMessageBox.StandardButton.Yes:
            self._start(self.model, lambda progress, cancel: model_download.convert_download(path),
                        lambda out: self.model.message.setText(f"Converted: {out}"))

    def reject(self) -> None:
        if self.busy():
            self.stop()
            if self.job is not None:
                self.job.wait(15_000)
        super().reject()
