"""The playhead and what the viewer shows for it: current frame, playback, onion skin, light table,
A/B flip, denoising previews and prefetch (the part of the window that owns the view)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel

from ..core.progress import ProgressEvent
from ..core.settings import Settings
from ..export.sheet_timing import timeline_notes
from ..project.resolve import ImageRef, ResolvedFrame, SegmentSpan
from .actions import ActionRegistry
from .panels.takes import TakesPanel
from .session import Session
from .widgets.frames import FrameProvider
from .widgets.sketch_row import sketch_layer, sketch_marks, sketches_ignored
from .widgets.thumbnails import DisplayImage, ImageLoader
from .widgets.timeline import COLORS, TimelineView
from .widgets.viewer import (
    LIGHT_TABLE_A,
    LIGHT_TABLE_B,
    ONION_AFTER,
    ONION_BEFORE,
    Layer,
    Playback,
    ViewerWidget,
    tinted,
)

log = logging.getLogger(__name__)

PREFETCH_PLAYING = 16
PREFETCH_PAUSED = 3
ONION_SIDE = 960  # onion skin and light table layers are drawn from images this size (fast to tint)


def _tint(image: DisplayImage, rgb: tuple[int, int, int]) -> DisplayImage:
    return tinted(image, QColor(*rgb))


class ImageLoaders:
    """The three picture supplies of the window, each on its own threads and memory budget."""

    def __init__(self, provider: FrameProvider, parent: QObject) -> None:
        self.provider = provider
        self.thumbnails = ImageLoader(provider, max_side=160, threads=1, budget_bytes=96 << 20, parent=parent)
        # full frames for the viewer: one decoder per spare core (the UI thread keeps one for itself)
        decoders = max(1, min(4, (os.cpu_count() or 2) - 1))
        self.frames = ImageLoader(provider, max_side=0, threads=decoders, budget_bytes=768 << 20, parent=parent)
        # onion skin and light table layers: medium-size pictures, tinted off the UI thread
        self.tints = ImageLoader(provider, max_side=ONION_SIDE, threads=1, budget_bytes=128 << 20,
                                 parent=parent, transform=_tint)

    def all(self) -> tuple[ImageLoader, ImageLoader, ImageLoader]:
        return self.thumbnails, self.frames, self.tints

    def invalidate(self) -> None:
        for loader in self.all():
            loader.invalidate()

    def shutdown(self) -> None:
        for loader in self.all():
            loader.shutdown()


@dataclass
class JobPreview:
    """The latest denoising preview of a running generation job, for the segment `key`."""

    task_id: int
    key: tuple[str, str]
    image: DisplayImage
    done: int
    total: int

    @property
    def label(self) -> str:
        return f"preview — step {self.done}/{self.total}" if self.total else "preview"


def job_segment_key(task) -> tuple[str, str] | None:
    """The (start key, end key) drawing ids a generation task works on, or None for other tasks."""
    job = (task.payload or {}).get("job") if isinstance(task.payload, dict) else None
    if job is None:
        return None
    if job.segment is not None:
        return tuple(job.segment)
    return (job.start.drawing_id, job.end.drawing_id)


class ViewerController(QObject):
    """Owns the playhead: which frame is current, what the viewer paints for it, playback."""

    span_changed = Signal(object)  # the key pair under the playhead or selected (SegmentSpan or None)

    def __init__(self, session: Session, viewer: ViewerWidget, timeline: TimelineView, playback: Playback,
                 images: ImageLoaders, settings: Settings, actions: ActionRegistry, takes: TakesPanel,
                 status_label: QLabel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.viewer = viewer
        self.timeline = timeline
        self.playback = playback
        self.images = images
        self.settings = settings
        self.actions = actions
        self.takes = takes
        self.status_label = status_label
        self.current_frame = 1
        self.job_preview: JobPreview | None = None  # the latest denoising preview of a running job
        self._wanted: set = set()
        self._span: SegmentSpan | None = None
        session.project_opened.connect(self._project_opened)
        session.document_changed.connect(self._document_changed)
        timeline.current_frame_changed.connect(self.set_current_frame)
        timeline.selection_changed.connect(lambda *_: self.selection_changed())
        playback.frame.connect(self._playback_frame)
        playback.state_changed.connect(self._playback_state)
        for loader in images.all():
            loader.ready.connect(self._image_ready)
        images.frames.failed.connect(self._image_failed)
        takes.compare_changed.connect(lambda _take: self.show_current())

    # ------------------------------------------------------------------ document -> view
    def _project_opened(self) -> None:
        shot = self.session.shot
        self.job_preview = None  # a job still running for the previous project shows nothing here
        self.current_frame = 1
        self.timeline.current_frame = 1
        self.timeline.selection = (1, 1)
        self.playback.fps = shot.fps if shot is not None else 24.0
        self.refresh()
        self.viewer.zoom_fit()
        spans = self.session.spans()
        if spans:
            self.timeline.select_span(spans[0])
        self.set_current_frame(1, force=True)

    def _document_changed(self, change) -> None:
        shot = self.session.shot
        if change.shot and shot is not None:
            self.playback.fps = shot.fps
        self.refresh()
        self.show_current()

    def refresh(self) -> None:
        frames = self.session.frames()
        self.timeline.sketch_frames = set(sketch_marks(self.session.shot, self.session.spans()))
        notes = timeline_notes(self.session.shot)
        self.timeline.set_sheet_notes(notes.marks, notes.rows)
        self.timeline.set_frames(frames, self.session.spans())
        self.playback.frame_count = max(1, len(frames))
        if self.current_frame > len(frames):
            self.current_frame = max(1, len(frames))
        self.selection_changed(force=True)

    def current_span(self) -> SegmentSpan | None:
        selected = self.timeline.selected_spans()
        if selected:
            return selected[0]
        return self.session.span_at(self.current_frame)

    def selection_changed(self, force: bool = False) -> None:
        span = self.current_span()
        if force or span != self._span:
            self._span = span
            self.span_changed.emit(span)
        if self.actions["play_range"].isChecked():
            self.playback.range = self.timeline.selection

    # ------------------------------------------------------------------ current frame and viewer
    def set_current_frame(self, frame: int, force: bool = False) -> None:
        count = self.timeline.frame_count
        if not count:
            self.viewer.show_frame(None)
            return
        frame = min(max(1, int(frame)), count)
        if frame == self.current_frame and not force:
            self.show_current()
            return
        self.current_frame = frame
        self.playback.current = frame
        self.timeline.set_current_frame(frame, emit=False)
        if self.timeline.selection[0] == self.timeline.selection[1] and not self.playback.playing:
            self.selection_changed()
        self.show_current()

    def _playback_frame(self, frame: int) -> None:
        self.current_frame = frame
        self.timeline.set_current_frame(frame, emit=False)
        self.show_current()

    def step(self, delta: int) -> None:
        self.playback.stop()
        count = self.timeline.frame_count
        if count:
            self.set_current_frame((self.current_frame - 1 + delta) % count + 1)

    def step_drawing(self, delta: int) -> None:
        """Jump to the start of the next / previous drawing (skips holds)."""
        frames = self.session.frames()
        starts = [f.frame for f in frames if f.new_drawing]
        if not starts:
            return
        if delta > 0:
            after = [s for s in starts if s > self.current_frame]
            self.set_current_frame(after[0] if after else starts[0])
        else:
            before = [s for s in starts if s < self.current_frame]
            self.set_current_frame(before[-1] if before else starts[-1])

    def toggle_play(self) -> None:
        self.playback.fps = self.session.shot.fps if self.session.shot is not None else 24.0
        self.playback.current = self.current_frame
        self.playback.toggle()

    def loop_toggled(self) -> None:
        self.playback.loop = self.actions["loop"].isChecked()

    def range_toggled(self) -> None:
        self.playback.range = self.timeline.selection if self.actions["play_range"].isChecked() else None

    def _playback_state(self, playing: bool) -> None:
        self.status_label.setText("▶ playing" if playing else "")
        if not playing:
            self.selection_changed()

    # ------------------------------------------------------------------ denoising previews
    def show_job_preview(self, task, image: DisplayImage, event: ProgressEvent) -> None:
        """A running job sent a preview: keep the latest, and show it if its segment is on screen."""
        key = job_segment_key(task)
        job = task.payload.get("job") if key is not None else None
        project = self.session.project
        mine = project is not None and job.reservation is not None \
            and job.reservation.project_file == project.project_file
        if key is None or task.state != "running" or not mine:
            return
        self.job_preview = JobPreview(task.id, key, image, int(event.done), int(event.total))
        self.show_current(prefetch=False)

    def job_ended(self, task) -> None:
        """Finished, failed or cancelled: its preview goes, the real frames come back."""
        if self.job_preview is not None and self.job_preview.task_id == task.id:
            self.job_preview = None
            self.show_current(prefetch=False)

    def _preview_on_screen(self) -> JobPreview | None:
        preview = self.job_preview
        if preview is None or self.playback.playing:
            return None
        span = self.session.span_at(self.current_frame)
        return preview if span is not None and span.key == preview.key else None

    def _image_ready(self, key) -> None:
        if key in self._wanted:  # prefetched frames and thumbnails elsewhere need no repaint
            self.show_current(prefetch=False)

    def _image_failed(self, key, _message: str) -> None:
        """A frame could not be loaded (a missing drawing): show it blank with its marker."""
        self._image_ready(key)

    def _onion_layers(self, frames: list[ResolvedFrame], index: int) -> list[Layer]:
        before = max(0, int(self.settings.onion_skin_before))
        after = max(0, int(self.settings.onion_skin_after))
        nearest = float(self.settings.onion_skin_opacity)
        layers: list[Layer] = []
        current_image = frames[index].image
        for direction, count, color in ((-1, before, ONION_BEFORE), (1, after, ONION_AFTER)):
            seen = [current_image]
            i = index
            opacity = nearest
            while len([s for s in seen if s != current_image]) < count:
                i += direction
                if not 0 <= i < len(frames):
                    break
                image = frames[i].image
                if image in seen:
                    continue
                seen.append(image)
                key = (image, color.getRgb()[:3])
                self._wanted.add(key)
                tinted_image = self.images.tints.get(key)
                if tinted_image is not None:
                    layers.append(Layer(tinted_image, opacity))
                opacity *= 0.6  # falloff: each drawing further away is fainter
        return layers

    def _key_ref(self, drawing_id: str) -> ImageRef:
        drawing = self.session.shot.drawings[drawing_id]
        return ImageRef("source", drawing.source_id, drawing.source_frame)

    def _compare_ref(self, frame: ResolvedFrame) -> tuple[ImageRef, str] | None:
        """The B side of A/B flip: the compared take's frame here, else the nearest key."""
        shot = self.session.shot
        span = self.session.span_at(frame.frame)
        if span is None:
            return None
        compare = self.takes.compare_take
        if compare and compare in shot.takes:
            take = shot.takes[compare]
            offset = frame.frame - span.start_frame
            candidates = [(tf.offset, i) for i, tf in enumerate(take.frames) if tf.offset <= offset]
            if candidates:
                index = max(candidates)[1]
                return ImageRef("take", compare, index), f"B: take {take.label or take.id} #{index + 1}"
            return self._key_ref(span.start_key), "B: start key"
        if frame.frame - span.start_frame <= span.gap / 2:
            return self._key_ref(span.start_key), "B: start key"
        return self._key_ref(span.end_key), "B: end key"

    def show_current(self, prefetch: bool = True) -> None:
        frames = self.session.frames()
        if not frames:
            self.viewer.show_frame(None)
            return
        index = min(self.current_frame, len(frames)) - 1
        frame = frames[index]
        ref, badge = frame.image, ""
        if frame.hidden is not None and self.actions["show_rejected"].isChecked():
            ref, badge = frame.hidden, f"{frame.label} {frame.status.value if frame.status else ''}: its own drawing"
        elif self.actions["ab_flip"].isChecked():
            compare = self._compare_ref(frame)
            if compare is not None:
                ref, badge = compare
        self._wanted = {ref}
        if prefetch:  # the frame changed: loads queued for earlier positions are not wanted any more
            self.images.frames.drop_pending()
        image = self.images.frames.get(ref, priority=10)
        marker = ""
        if image is None:  # show the thumbnail (or keep the last drawing) until the frame is decoded
            error = self.images.frames.error(ref) or self.images.thumbnails.error(ref)
            thumb = None if error else self.images.thumbnails.get(ref, priority=10)
            # a drawing that cannot be shown is a blank frame with a marker, never the previous picture;
            # a denoising preview on screen (its overlay says so) is never carried over to a frame
            # that is not part of its job
            marker = (self.images.provider.unavailable(ref, error) or "") if thumb is None else ""
            last = None if marker or self.viewer.overlay else self.viewer.image
            image = thumb if thumb is not None else last
        layers: list[Layer] = []
        if self.actions["onion_skin"].isChecked() and not badge:
            layers += self._onion_layers(frames, index)
            badge = "ONION SKIN"
        if self.actions["light_table"].isChecked():
            span = self.session.span_at(frame.frame)
            if span is not None:
                for drawing_id, color in ((span.start_key, LIGHT_TABLE_A), (span.end_key, LIGHT_TABLE_B)):
                    key = (self._key_ref(drawing_id), color.getRgb()[:3])
                    self._wanted.add(key)
                    key_image = self.images.tints.get(key)
                    if key_image is not None:
                        layers.append(Layer(key_image, 0.55))
                badge = (badge + "  " if badge else "") + "LIGHT TABLE"
        if self.actions["sketch_overlay"].isChecked() or self.actions["light_table"].isChecked():
            sketch = sketch_layer(self.session, frame.frame)
            if sketch is not None:
                layers.append(sketch)
                ignored = sketches_ignored(self.session.shot, self.session.span_at(frame.frame))
                badge = (badge + "  " if badge else "") + ("SKETCH (this engine ignores it)" if ignored else "SKETCH")
        kind = {"key": "key", "drawing": "drawing", "inbetween": "in-between"}.get(frame.kind, frame.kind)
        status = f" {frame.status.value}" if frame.status is not None and frame.take_id else ""
        note = f" — {frame.note}" if frame.note else ""
        caption = f"{frame.frame} / {len(frames)}   {frame.label}   {kind}{status}{note}"
        if frame.hidden is not None:  # its own label and status, what it holds, and how to see it
            caption = f"{frame.frame} / {len(frames)}   {frame.note} (V shows {frame.label})"
        border = COLORS[frame.status] if frame.status is not None and frame.take_id else None
        preview = self._preview_on_screen()
        if preview is not None:  # the job for this segment is running: show where it has got to
            self.viewer.show_frame(preview.image, [], caption, badge, None, moving=False, overlay=preview.label)
            return
        self.viewer.show_frame(image, layers, caption, badge, border, moving=prefetch, overlay=marker,
                               overlay_color=COLORS["missing"].darker(130) if marker else None)
        if prefetch:
            self._prefetch(frames, index)

    def _prefetch(self, frames: list[ResolvedFrame], index: int) -> None:
        ahead = PREFETCH_PLAYING if self.playback.playing else PREFETCH_PAUSED
        count = len(frames)
        first, last = self.playback.bounds() if self.playback.playing else (1, count)
        for step in range(1, ahead + 1):
            i = index + step
            if i > last - 1:
                if not self.playback.playing or not self.playback.loop:
                    break
                i = first - 1 + (i - (last - 1) - 1) % (last - first + 1)
            self.images.frames.get(frames[i].image, priority=5 - min(step, 5))
        if not self.playback.playing:
            for step in range(1, PREFETCH_PAUSED + 1):
                if index - step >= 0:
                    self.images.frames.get(frames[index - step].image, priority=0)
