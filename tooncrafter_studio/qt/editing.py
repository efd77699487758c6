"""Timeline edits, generation triggers and keyboard review, all through undoable commands (MainWindow part)."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QInputDialog

from ..core.errors import StudioError
from ..project.commands import DeleteFrames, InsertFrames, SetExposure, SetFrameStatus, SetKeys, SetTakeStatus
from ..project.document import ReviewStatus
from ..project.resolve import cell_at, take_frame_at
from .panels.takes import next_pending

log = logging.getLogger(__name__)


class EditingMixin:
    """Part of MainWindow (a mixin): uses the window's session, widgets, loaders and actions."""

    # ------------------------------------------------------------------ timeline edits
    def _frames_in_selection(self) -> list[int]:
        first, last = self.timeline.selection
        if first == last:
            return [self.current_frame]
        return list(range(first, last + 1))

    def set_keys(self, is_key: bool) -> None:
        shot = self.session.shot
        if shot is None:
            return
        frames = self._frames_in_selection()
        if len(frames) > 1 and is_key:  # a range: mark every drawing in it
            frames = [f for f in frames if f == frames[0] or cell_at(shot, f)[1] == f]
        try:
            command = SetKeys.at_frames(shot, frames, is_key)
        except StudioError as exc:
            self.show_message(str(exc))
            return
        self.session.push(command)

    def set_exposure(self, length: int) -> None:
        shot = self.session.shot
        if shot is None:
            return
        try:
            command = SetExposure.at_frames(shot, self._frames_in_selection(), length)
        except StudioError as exc:
            self.show_message(str(exc))
            return
        self.session.push(command)

    def _exposure_dragged(self, cell_frame: int, length: int) -> None:
        shot = self.session.shot
        if shot is None:
            return
        try:
            index, start = cell_at(shot, cell_frame)
        except IndexError:
            return
        if start == cell_frame and shot.cells[index].length != length:
            self.session.push(SetExposure([index], length, merge_id="timeline-exposure-drag"))

    def _exposure_drag_finished(self) -> None:
        if self.session.project is not None:
            self.session.project.stack.break_merge()

    def exposure_dialog(self) -> None:
        length, ok = QInputDialog.getInt(self, "Exposure", "Hold each selected drawing for (frames):", 2, 1, 1000)
        if ok:
            self.set_exposure(length)

    def insert_frame(self) -> None:
        if self.session.shot is not None:
            self.session.push(InsertFrames(self.current_frame, 1))

    def delete_frames(self) -> None:
        if self.session.shot is None:
            return
        first, last = self.timeline.selection
        if first == last:
            first = last = self.current_frame
        if self.session.push(DeleteFrames(first, last - first + 1)) is not None:
            self.timeline.set_selection(first, first)

    def select_pair(self) -> None:
        span = self.session.span_at(self.current_frame)
        if span is None:
            self.show_message("The current frame is not between two keys.")
            return
        self.timeline.select_span(span)

    # ------------------------------------------------------------------ generation and review
    def generate_selection(self) -> None:
        spans = self.timeline.selected_spans() or ([s] if (s := self.session.span_at(self.current_frame)) else [])
        self.generation.generate(spans)

    def generate_all(self) -> None:
        self.generation.generate(self.session.spans())

    def regenerate(self) -> None:
        span = self.current_span()
        self.generation.generate([span] if span else [], new_seed=True)

    def regenerate_rejected(self) -> None:
        span = self.current_span()
        if span is None:
            self.show_message("Select a key pair first.")
            return
        self.generation.regenerate_rejected(span)

    def _take_frame_here(self) -> tuple[str, int] | None:
        shot = self.session.shot
        if shot is None:
            return None
        return take_frame_at(shot, self.session.span_at(self.current_frame), self.current_frame)

    def review_frame(self, status: ReviewStatus) -> None:
        found = self._take_frame_here()
        if found is None:
            self.show_message("The current frame is not a generated in-between.")
            return
        take_id, index = found
        if self.session.push(SetFrameStatus(take_id, [index], status)) is None:
            return
        if status != ReviewStatus.PENDING:
            span = self.session.span_at(self.current_frame)
            stop = next_pending(self.session.frames(), self.current_frame)
            if stop is not None and span is not None and span.start_frame < stop < span.start_frame + span.gap:
                self.set_current_frame(stop)

    def review_take(self, status: ReviewStatus) -> None:
        span = self.current_span()
        shot = self.session.shot
        segment = shot.segments.get(span.key) if shot is not None and span is not None else None
        if segment is None or segment.active_take is None:
            self.show_message("This key pair has no take to review.")
            return
        self.session.push(SetTakeStatus(segment.active_take, status))

    def goto_pending(self, forward: bool) -> None:
        stop = next_pending(self.session.frames(), self.current_frame, forward)
        if stop is None:
            self.show_message("No pending in-betweens: everything is reviewed.")
            return
        self.set_current_frame(stop)
