"""Small form-building pieces shared by the dialogs."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton


def path_row(field: QLineEdit, on_browse: Callable[[], None]) -> QHBoxLayout:
    """A path field with a "Browse…" button beside it."""
    browse = QPushButton("Browse…")
    browse.setAutoDefault(False)  # Enter in the field confirms the dialog, never opens a file browser
    browse.clicked.connect(on_browse)
    row = QHBoxLayout()
    row.addWidget(field, 1)
    row.addWidget(browse)
    return row
