"""Timeline edits, generation triggers and keyboard review, all through undoable commands: the part
of the window that edits the shot (built by MainWindow with what it needs)."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QInputDialog, QWidget

from ..core.errors import StudioError
from ..project.commands import DeleteFrames, InsertFrames, SetExposure, SetFrameStatus, SetKeys, SetTakeStatus
from ..project.document import ReviewStatus, segment_settings
from ..project.resolve import cell_at, take_frame_at
from .generation import GenerationController
from .panels.takes import next_pending
from .prompts import Prompts
from .session import Session
from .viewer_state import ViewerController
from .widgets.sketch_row import place_sketch, sketches_ignored, span_inside
from .widgets.timeline import TimelineView

log = logging.getLogger(__name__)


class Editing(QObject):
    """Keys, exposures, frames, sketches, generation and review of the open shot."""

    new_frames_ready = Signal(bool)  # a new take can be jumped to (Go to New Frames)

    def __init__(self, window: QWidget, session: Session, timeline: TimelineView, view: ViewerController,
                 generation: GenerationController, prompts: Prompts) -> None:
        super().__init__(window)
        self.window = window  # the parent of its small dialogs
        self.session = session
        self.timeline = timeline
        self.view = view
        self.generation = generation
        self.prompts = prompts
        self.last_new_take: str | None = None
        timeline.exposure_dragged.connect(self.exposure_dragged)
        timeline.exposure_drag_finished.connect(self.exposure_drag_finished)
        timeline.sketch_dropped.connect(self.place_sketch)
        generation.take_added.connect(self._take_added)

    # ------------------------------------------------------------------ timeline edits
    def _frames_in_selection(self) -> list[int]:
        first, last = self.timeline.selection
        if first == last:
            return [self.view.current_frame]
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
            self.prompts.show_message(str(exc))
            return
        self.session.push(command)

    def set_exposure(self, length: int) -> None:
        shot = self.session.shot
        if shot is None:
            return
        try:
            command = SetExposure.at_frames(shot, self._frames_in_selection(), length)
        except StudioError as exc:
            self.prompts.show_message(str(exc))
            return
        self.session.push(command)

    def exposure_dragged(self, cell_frame: int, length: int) -> None:
        shot = self.session.shot
        if shot is None:
            return
        try:
            index, start = cell_at(shot, cell_frame)
        except IndexError:
            return
        if start == cell_frame and shot.cells[index].length != length:
            self.session.push(SetExposure([index], length, merge_id="timeline-exposure-drag"))

    def exposure_drag_finished(self) -> None:
        if self.session.project is not None:
            self.session.project.stack.break_merge()

    def exposure_dialog(self) -> None:
        length, ok = QInputDialog.getInt(self.window, "Exposure", "Hold each selected drawing for (frames):", 2, 1, 1000)
        if ok:
            self.set_exposure(length)

    def insert_frame(self) -> None:
        if self.session.shot is not None:
            self.session.push(InsertFrames(self.view.current_frame, 1))

    def delete_frames(self) -> None:
        if self.session.shot is None:
            return
        first, last = self.timeline.selection
        if first == last:
            first = last = self.view.current_frame
        if self.session.push(DeleteFrames(first, last - first + 1)) is not None:
            self.timeline.set_selection(first, first)

    def select_pair(self) -> None:
        span = self.session.span_at(self.view.current_frame)
        if span is None:
            self.prompts.show_message("The current frame is not between two keys.")
            return
        self.timeline.select_span(span)

    # ------------------------------------------------------------------ generation and review
    def generate_selection(self) -> None:
        spans = self.timeline.selected_spans() or ([s] if (s := self.session.span_at(self.view.current_frame)) else [])
        self.generation.generate(spans)

    def generate_all(self) -> None:
        """Every key pair, except those a timing sheet marks no in-betweens for."""
        shot = self.session.shot
        spans = [s for s in self.session.spans() if shot is None or segment_settings(shot, s.key).offsets != []]
        if len(spans) < len(self.session.spans()):
            self.prompts.show_message(f"{len(self.session.spans()) - len(spans)} key pair(s) skipped: the timing "
                                      "sheet marks no in-betweens there.")
            if not spans:  # nothing left to queue: "select a key pair first" would hide the reason
                return
        self.generation.generate(spans)

    def regenerate(self) -> None:
        span = self.view.current_span()
        self.generation.generate([span] if span else [], new_seed=True)

    def regenerate_rejected(self) -> None:
        span = self.view.current_span()
        if span is None:
            self.prompts.show_message("Select a key pair first.")
            return
        self.generation.regenerate_rejected(span)

    def _take_frame_here(self) -> tuple[str, int] | None:
        shot = self.session.shot
        if shot is None:
            return None
        return take_frame_at(shot, self.session.span_at(self.view.current_frame), self.view.current_frame)

    def review_frame(self, status: ReviewStatus) -> None:
        found = self._take_frame_here()
        if found is None:
            self.prompts.show_message("The current frame is not a generated in-between.")
            return
        take_id, index = found
        if self.session.push(SetFrameStatus(take_id, [index], status)) is None:
            return
        if status != ReviewStatus.PENDING:
            span = self.session.span_at(self.view.current_frame)
            stop = next_pending(self.session.frames(), self.view.current_frame)
            if stop is not None and span is not None and span.start_frame < stop < span.start_frame + span.gap:
                self.view.set_current_frame(stop)

    def review_take(self, status: ReviewStatus) -> None:
        span = self.view.current_span()
        shot = self.session.shot
        segment = shot.segments.get(span.key) if shot is not None and span is not None else None
        if segment is None or segment.active_take is None:
            self.prompts.show_message("This key pair has no take to review.")
            return
        self.session.push(SetTakeStatus(segment.active_take, status))

    def goto_pending(self, forward: bool) -> None:
        stop = next_pending(self.session.frames(), self.view.current_frame, forward)
        if stop is None:
            self.prompts.show_message("No pending in-betweens: everything is reviewed.")
            return
        self.view.set_current_frame(stop)

    # ------------------------------------------------------------------ sketches and new takes
    def place_sketch(self, frame: int, path: str) -> None:
        """An image dropped (or imported) on an in-between cell becomes that cell's sketch (undoable)."""
        problem = place_sketch(self.session, frame, path)
        if problem:
            self.prompts.show_message(problem, 8000)
            return
        ignored = sketches_ignored(self.session.shot, span_inside(self.session.spans(), frame))
        if ignored:
            self.prompts.show_message(f"Sketch {Path(path).name} placed on frame {frame}. {ignored}", 15000)
        else:
            self.prompts.show_message(f"Sketch {Path(path).name} placed on frame {frame}", 5000)

    def _take_added(self, take_id: str, _key) -> None:
        """A take arrived: the playhead stays where the user is; Go to New Frames (Ctrl+J) jumps."""
        self.last_new_take = take_id
        self.new_frames_ready.emit(self.new_frames_stop() is not None)

    def new_frames_stop(self) -> int | None:
        """The first frame to review of the latest take (or its first frame), while it is active."""
        shot = self.session.shot
        take = shot.takes.get(self.last_new_take or "") if shot is not None else None
        if take is None:
            return None
        span = next((s for s in self.session.spans() if s.key == (take.start_key, take.end_key)), None)
        segment = shot.segments.get((take.start_key, take.end_key))
        if span is None or segment is None or segment.active_take != take.id or not take.frames:
            return None
        stop = next_pending(self.session.frames(), span.start_frame)
        if stop is not None and stop < span.start_frame + span.gap:
            return stop
        return span.start_frame + min(tf.offset for tf in take.frames)

    def go_to_new_frames(self) -> None:
        stop = self.new_frames_stop()
        if stop is None:
            self.prompts.show_message("No new take to go to.")
            return
        self.new_frames_ready.emit(False)
        self.view.set_current_frame(stop)
