"""Settings: model location, default engine, memory mode, device, onion skin look, autosave and
keyboard shortcuts (from the one command registry)."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.settings import Settings
from ..actions import COMMANDS, SPECS
from .form_rows import path_row


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, engine_ids: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.original = settings
        self.model_path = QLineEdit(settings.model_path or "")
        self.model_path.setPlaceholderText("models/ or the user models folder (searched in that order)")
        model_row = path_row(self.model_path, self._browse)
        self.default_engine = QComboBox()
        for engine_id in engine_ids:
            self.default_engine.addItem(engine_id, engine_id)
        self.default_engine.setCurrentIndex(max(0, self.default_engine.findData(settings.default_engine)))
        self.memory_mode = QComboBox()
        for mode in ("auto", "high", "balanced", "low"):
            self.memory_mode.addItem(mode, mode)
        self.memory_mode.setCurrentIndex(max(0, self.memory_mode.findData(settings.memory_mode)))
        self.device = QComboBox()
        for device in ("auto", "cuda", "mps", "cpu"):
            self.device.addItem(device, device)
        self.device.setCurrentIndex(max(0, self.device.findData(settings.device)))
        self.keep_model_loaded = QCheckBox("Keep the model on the GPU between jobs")
        self.keep_model_loaded.setToolTip("Off: after each job (and a cancel) the weights and the GPU memory cache "
                                          "are given back to other programs; the next job places the model again.")
        self.keep_model_loaded.setChecked(settings.keep_model_loaded)
        self.onion_before = QSpinBox()
        self.onion_before.setRange(0, 10)
        self.onion_before.setValue(settings.onion_skin_before)
        self.onion_after = QSpinBox()
        self.onion_after.setRange(0, 10)
        self.onion_after.setValue(settings.onion_skin_after)
        self.onion_opacity = QDoubleSpinBox()
        self.onion_opacity.setRange(0.05, 1.0)
        self.onion_opacity.setSingleStep(0.05)
        self.onion_opacity.setValue(settings.onion_skin_opacity)
        self.autosave = QSpinBox()
        self.autosave.setRange(0, 3600)
        self.autosave.setSuffix(" s")
        self.autosave.setSpecialValueText("off")
        self.autosave.setValue(settings.autosave_interval_s)

        self.cluster_address = QLineEdit(settings.cluster_address)
        self.cluster_address.setPlaceholderText("empty: this machine; ray://head:10001 for a Ray cluster")
        self.cluster_address.setToolTip("Generate on a Ray cluster (pip install tooncrafter-studio[cluster]): "
                                        "'ray' is RAY_ADDRESS, else a private cluster on this machine; 'ray:auto' "
                                        "the one running here. The project must be on this machine.")

        general = QWidget()
        form = QFormLayout(general)
        form.addRow("Model file", model_row)
        form.addRow("Default engine", self.default_engine)
        form.addRow("Memory mode", self.memory_mode)
        form.addRow("Device", self.device)
        form.addRow("", self.keep_model_loaded)
        form.addRow("Onion skin: drawings before", self.onion_before)
        form.addRow("Onion skin: drawings after", self.onion_after)
        form.addRow("Onion skin: nearest opacity", self.onion_opacity)
        form.addRow("Autosave every", self.autosave)
        form.addRow("Cluster address", self.cluster_address)

        self.shortcuts = QTableWidget(len(COMMANDS), 2)
        self.shortcuts.setHorizontalHeaderLabels(["Command", "Keys (separate with ;)"])
        self.shortcuts.horizontalHeader().setStretchLastSection(True)
        for row, spec in enumerate(COMMANDS):
            name = QTableWidgetItem(spec.text.replace("&", ""))
            name.setFlags(name.flags() & ~Qt.ItemFlag.ItemIsEditable)
            name.setData(Qt.ItemDataRole.UserRole, spec.id)
            keys = settings.shortcuts.get(spec.id, "; ".join(spec.keys))
            self.shortcuts.setItem(row, 0, name)
            self.shortcuts.setItem(row, 1, QTableWidgetItem(keys))
        self.conflicts = QLabel()
        self.conflicts.setWordWrap(True)
        self.shortcuts.itemChanged.connect(self._check_conflicts)
        keys_page = QWidget()
        keys_layout = QVBoxLayout(keys_page)
        keys_layout.addWidget(self.shortcuts)
        keys_layout.addWidget(self.conflicts)

        tabs = QTabWidget()
        tabs.addTab(general, "General")
        tabs.addTab(keys_page, "Shortcuts")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(buttons)
        self.resize(560, 520)
        self._check_conflicts()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "ToonCrafter model", self.model_path.text(),
                                              "Checkpoints (*.ckpt *.safetensors *.pt);;All files (*)")
        if path:
            self.model_path.setText(path)

    def shortcut_overrides(self) -> dict[str, str]:
        overrides = {}
        for row in range(self.shortcuts.rowCount()):
            command_id = self.shortcuts.item(row, 0).data(Qt.ItemDataRole.UserRole)
            text = self.shortcuts.item(row, 1).text().strip()
            parts = [QKeySequence(p.strip()).toString() for p in text.split(";") if p.strip()]
            if parts != list(SPECS[command_id].keys):
                overrides[command_id] = "; ".join(parts)
        return overrides

    def _check_conflicts(self, *_args) -> None:
        seen: dict[str, list[str]] = {}
        for row in range(self.shortcuts.rowCount()):
            name = self.shortcuts.item(row, 0).text()
            item = self.shortcuts.item(row, 1)
            if item is None:
                continue
            for part in item.text().split(";"):
                key = QKeySequence(part.strip()).toString()
                if key:
                    seen.setdefault(key, []).append(name)
        clashes = [f"{key}: {', '.join(names)}" for key, names in seen.items() if len(names) > 1]
        self.conflicts.setText("Conflicts — " + "; ".join(clashes) if clashes else "")

    def result_settings(self) -> Settings:
        return dataclasses.replace(
            self.original,
            model_path=self.model_path.text().strip() or None,
            default_engine=self.default_engine.currentData() or self.original.default_engine,
            memory_mode=self.memory_mode.currentData(),
            device=self.device.currentData(),
            keep_model_loaded=self.keep_model_loaded.isChecked(),
            onion_skin_before=self.onion_before.value(),
            onion_skin_after=self.onion_after.value(),
            onion_skin_opacity=round(self.onion_opacity.value(), 3),
            autosave_interval_s=self.autosave.value(),
            shortcuts=self.shortcut_overrides(),
            cluster_address=self.cluster_address.text().strip(),
        )
