"""The open project as Qt signals: a thin wrapper over project.Project and its CommandStack.

Widgets never mutate the shot: they call `session.push(command)`; a command that refuses its
input raises a StudioError, which becomes the `error` signal (a message for the status bar)
and leaves the shot untouched.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from ..core.errors import StudioError
from ..project.commands import Change, Command
from ..project.document import Shot
from ..project.project import Project
from ..project.resolve import ResolvedFrame, SegmentSpan, key_spans, resolve_timeline, span_containing

log = logging.getLogger(__name__)


class Session(QObject):
    project_opened = Signal()  # a different project (or none) is now open
    document_changed = Signal(object)  # Change, after do / undo / redo
    state_changed = Signal()  # undo/redo availability, labels, clean state
    error = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self._frames: list[ResolvedFrame] | None = None
        self._spans: list[SegmentSpan] | None = None
        self.include_pending = True

    # -- opening
    def set_project(self, project: Project | None) -> None:
        if self.project is not None:
            self.project.stack.remove_listener(self._on_change)
            self.project.stack.remove_state_listener(self._on_state)
        self.project = project
        if project is not None:
            project.stack.add_listener(self._on_change)
            project.stack.add_state_listener(self._on_state)
        self._invalidate()
        self.project_opened.emit()
        self.state_changed.emit()

    @property
    def shot(self) -> Shot | None:
        return self.project.shot if self.project is not None else None

    @property
    def folder(self):
        return self.project.folder if self.project is not None else None

    # -- derived views of the document (cached until the next change)
    def frames(self) -> list[ResolvedFrame]:
        if self._frames is None:
            self._frames = resolve_timeline(self.shot, self.include_pending) if self.shot is not None else []
        return self._frames

    def spans(self) -> list[SegmentSpan]:
        if self._spans is None:
            self._spans = key_spans(self.shot) if self.shot is not None else []
        return self._spans

    def span_at(self, frame: int) -> SegmentSpan | None:
        return span_containing(self.shot, frame, self.spans()) if self.shot is not None else None

    def _invalidate(self) -> None:
        self._frames = None
        self._spans = None

    # -- editing
    def push(self, command: Command) -> Change | None:
        """Run an undoable command; a refused one becomes an `error` message."""
        if self.project is None:
            self.error.emit("No project is open.")
            return None
        try:
            return self.project.push(command)
        except StudioError as exc:
            self.error.emit(str(exc))
            return None

    def undo(self) -> None:
        if self.project is not None:
            self.project.undo()

    def redo(self) -> None:
        if self.project is not None:
            self.project.redo()

    @property
    def modified(self) -> bool:
        return self.project is not None and self.project.modified

    def _on_change(self, change: Change) -> None:
        self._invalidate()
        self.document_changed.emit(change)

    def _on_state(self) -> None:
        self.state_changed.emit()
