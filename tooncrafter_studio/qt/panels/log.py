"""The log panel (records from `logging`, any thread) and "Copy diagnostics"."""

from __future__ import annotations

import logging
import os
import platform
import sys
from importlib import metadata
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from ...engines.base import ProbeResult

MAX_LINES = 5000


class _Relay(QObject):
    record = Signal(str, int)


class QtLogHandler(logging.Handler):
    """Forwards formatted records to the UI thread through a queued signal."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.relay = _Relay()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.relay.record.emit(self.format(record), record.levelno)
        except RuntimeError:  # the panel is gone (window closed)
            pass


class LogPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(MAX_LINES)
        self.copy_button = QPushButton("Copy diagnostics")
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.text.clear)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.text)
        layout.addLayout(buttons)
        self.handler = QtLogHandler()
        self.handler.relay.record.connect(self.append)
        logging.getLogger("tooncrafter_studio").addHandler(self.handler)

    def append(self, line: str, level: int = logging.INFO) -> None:
        if level >= logging.WARNING:
            line = f"⚠ {line}"
        self.text.appendPlainText(line)

    def detach(self) -> None:
        logging.getLogger("tooncrafter_studio").removeHandler(self.handler)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_model(identity: dict[str, Any] | None, known: bool = True) -> str:
    """One line naming the model file: path, size and fingerprint (what the probe pool found)."""
    if not known:
        return "Model file: (still being checked)"
    if identity is None:
        return "Model file: none found"
    parts = [str(identity.get("file", "?"))]
    if "size_bytes" in identity:
        parts.append(f"{identity['size_bytes']:,} bytes")
    for field in ("fingerprint", "architecture", "format", "error"):
        if identity.get(field):
            parts.append(f"{field} {identity[field]}")
    return "Model file: " + ", ".join(parts)


def diagnostics(probes: dict[str, ProbeResult], model_path: str | None, project: str | None,
                model: str = "") -> str:
    """Versions, device and model identity, for a bug report. Torch is never imported for this: the
    engines' probe results say what the device and model are."""
    from PySide6 import __version__ as pyside_version

    from ... import __version__

    lines = [
        f"ToonCrafter Studio {__version__}",
        f"Python {sys.version.split()[0]} on {platform.platform()}",
        f"PySide6 {pyside_version}, Qt platform {QApplication.platformName() if QApplication.instance() else '?'}",
        f"numpy {_version('numpy')}, opencv {_version('opencv-python-headless')}, pillow {_version('pillow')}",
        f"torch {_version('torch')} ({'loaded' if 'torch' in sys.modules else 'not loaded'}), "
        f"torchvision {_version('torchvision')}, open_clip {_version('open_clip_torch')}",
        f"CPU cores: {os.cpu_count()}",
        f"Model path setting: {model_path or '(search the usual places)'}",
        *([model] if model else []),
        f"Project: {project or '(none)'}",
        "Engines:",
    ]
    for engine_id, probe in sorted(probes.items()):
        state = "available" if probe.available else "unavailable"
        lines.append(f"  {engine_id}: {state} — {probe.reason}")
    return "\n".join(lines)
