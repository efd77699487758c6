"""The window's dialogs opened with what they need, and what they return applied: settings, export,
engine set-up, the model file, diagnostics, about and the shortcut sheet."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFileDialog,
    QMessageBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..core.settings import Settings
from .actions import ActionRegistry, about_text, shortcut_sheet_html
from .dialogs.export import ExportDialog
from .dialogs.settings import SettingsDialog
from .dialogs.timing_sheet import TimingSheetDialog
from .generation import GenerationController
from .panels.log import describe_model, diagnostics
from .project_files import ProjectFiles
from .prompts import APP_NAME, Prompts
from .session import Session
from .settings_store import SettingsStore
from .viewer_state import ViewerController

log = logging.getLogger(__name__)


class StudioDialogs(QObject):
    def __init__(self, window: QWidget, store: SettingsStore, session: Session,
                 generation: GenerationController, files: ProjectFiles, view: ViewerController,
                 actions: ActionRegistry, prompts: Prompts) -> None:
        super().__init__(window)
        self.window = window
        self.store = store
        self.settings = store.settings  # the one Settings object every part holds; changed in place
        self.session = session
        self.generation = generation
        self.files = files
        self.view = view
        self.actions = actions
        self.prompts = prompts
        self.last_export: ExportDialog | None = None

    # ------------------------------------------------------------------ settings
    def apply(self) -> None:
        """Make the current settings take effect (autosave interval, shortcuts)."""
        self.files.set_autosave_interval(self.settings.autosave_interval_s)
        self.actions.apply_shortcuts(self.settings.shortcuts)

    def apply_settings(self, settings: Settings) -> None:
        self.store.replace(settings)
        self.apply()
        self.generation.settings_changed(self.settings)
        self.view.show_current()

    def settings_dialog(self) -> SettingsDialog:
        dialog = SettingsDialog(self.settings, list(self.generation.probes) or ["flow"], self.window)
        dialog.accepted.connect(lambda: self.apply_settings(dialog.result_settings()))
        dialog.open()
        return dialog

    # ------------------------------------------------------------------ engines and the model
    def locate_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Locate the ToonCrafter model", "",
                                              "Checkpoints (*.ckpt *.safetensors *.pt);;All files (*)")
        if path:
            self.set_model_path(path)

    def set_model_path(self, path: str | None) -> None:
        self.settings.model_path = path
        self.store.save()
        self.generation.settings_changed(self.settings)

    def engine_setup_dialog(self):
        from .dialogs.engine_setup import EngineSetupDialog

        dialog = EngineSetupDialog(self.window, self.settings.model_path)
        dialog.changed.connect(lambda: self.generation.settings_changed(self.settings))  # probe again
        dialog.open()
        return dialog

    # ------------------------------------------------------------------ export
    def export_dialog(self) -> ExportDialog | None:
        project = self.session.project
        if project is None:
            self.prompts.show_message("Open a shot first.")
            return None
        dialog = ExportDialog(project.shot, project.folder, parent=self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.locate_missing.connect(lambda: self._locate_for_export(dialog))
        dialog.open()
        self.last_export = dialog
        return dialog

    def import_timing_dialog(self, path: str = "") -> TimingSheetDialog | None:
        """File ▸ Import Timing Sheet…: the plan the dialog previews is applied as one undoable command."""
        if self.session.project is None:
            self.prompts.show_message("Open a shot first.")
            return None
        dialog = TimingSheetDialog(self.session.project.shot, path, parent=self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: dialog.plan is not None and self.session.push(dialog.plan.command()))
        dialog.open()
        return dialog

    def _locate_for_export(self, dialog: ExportDialog) -> None:
        if self.files.locate_missing_drawings():
            dialog.status.setText("Drawings found: export again.")
            dialog.locate_button.setVisible(False)

    def shutdown(self) -> None:
        for dialog in self.window.findChildren(ExportDialog):  # an export still running is cancelled too
            dialog.worker.shutdown()

    # ------------------------------------------------------------------ help
    def copy_diagnostics(self) -> str:
        project = self.session.project
        model = describe_model(self.generation.model_identity, self.generation.model_identity_known)
        text = diagnostics(self.generation.probes, self.settings.model_path,
                           str(project.folder) if project else None, model)
        QApplication.clipboard().setText(text)
        self.prompts.show_message("Diagnostics copied to the clipboard.")
        return text

    def about(self) -> None:
        QMessageBox.about(self.window, f"About {APP_NAME}", about_text())

    def shortcut_sheet(self) -> QDialog:
        """Every command and its keys, generated from the action registry (so it is never stale)."""
        dialog = QDialog(self.window)
        dialog.setWindowTitle("Keyboard shortcuts")
        dialog.setObjectName("shortcut_sheet")
        text = QTextBrowser(dialog)
        text.setHtml(shortcut_sheet_html(self.actions))
        layout = QVBoxLayout(dialog)
        layout.addWidget(text)
        dialog.resize(520, 640)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog
