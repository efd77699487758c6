"""The exposure sheet across the bottom of the window, painted by hand (Pencil2D / OpenToonz style).

Rows, top to bottom: frame numbers; the read-only rows of an imported timing sheet (dialogue, camera
work), if any; cells (one box per exposure, with the sheet's ○ in-between and ● reverse marks on top, holds drawn as one extended
cell, thumbnail when there is room); segments (the key pairs, click to select one). Keys carry a
marker; in-betweens are filled by review status so a generated drawing can never pass for a
hand-drawn one. Painting only reads `resolve_timeline` output and cached thumbnails: a missing
thumbnail is requested from the background loader and the cell is painted without it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPaintEvent, QPen, QPolygon, QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QToolTip, QWidget

from ...project.document import ReviewStatus
from ...project.resolve import ResolvedFrame, SegmentSpan
from .thumbnails import ImageLoader

RULER_H = 20
SEGMENT_H = 14
NOTE_H = 16  # a read-only row of an imported timing sheet (dialogue, camera work)
CELL_PAD = 3
MIN_FRAME_W = 4.0
MAX_FRAME_W = 160.0

COLORS = {
    "background": QColor(38, 38, 42),
    "ruler": QColor(52, 52, 58),
    "ruler_text": QColor(190, 190, 196),
    "key": QColor(64, 104, 168),
    "drawing": QColor(88, 88, 96),
    ReviewStatus.PENDING: QColor(206, 146, 40),
    ReviewStatus.ACCEPTED: QColor(62, 150, 84),
    ReviewStatus.REJECTED: QColor(178, 58, 58),
    "key_marker": QColor(250, 210, 70),
    "hold": QColor(255, 255, 255, 70),
    "playhead": QColor(235, 64, 52),
    "selection": QColor(120, 170, 255, 60),
    "selection_edge": QColor(140, 190, 255),
    "segment": QColor(70, 70, 78),
    "segment_selected": QColor(110, 150, 220),
    "text": QColor(240, 240, 240),
    "missing": QColor(255, 90, 90),
    "sketch": QColor(150, 150, 160),
    "note_row": QColor(46, 46, 52),
    "note": QColor(120, 96, 150),
    "sheet_mark": QColor(255, 236, 160),
}


@dataclass(frozen=True)
class Run:
    """Consecutive timeline frames painted as one cell: a drawing and its hold."""

    first: int  # 1-based frame
    length: int
    frame: ResolvedFrame  # the first frame of the run

    @property
    def last(self) -> int:
        return self.first + self.length - 1


def runs_of(frames: list[ResolvedFrame]) -> list[Run]:
    """Group frames into cells: a new cell starts with a new drawing or a change of review mark."""
    runs: list[Run] = []
    start = 0
    for i in range(1, len(frames) + 1):
        if i == len(frames) or frames[i].new_drawing or _mark(frames[i]) != _mark(frames[start]):
            runs.append(Run(frames[start].frame, i - start, frames[start]))
            start = i
    return runs


def _mark(frame: ResolvedFrame) -> tuple:
    return (frame.image, frame.status, frame.take_id, frame.note)


def run_color(frame: ResolvedFrame) -> QColor:
    if frame.note or (frame.kind == "inbetween" and frame.status is not None):
        return COLORS[frame.status or ReviewStatus.PENDING]
    if frame.status == ReviewStatus.REJECTED:
        return COLORS[ReviewStatus.REJECTED]
    return COLORS["key"] if frame.kind == "key" else COLORS["drawing"]


class TimelineView(QAbstractScrollArea):
    """The exposure sheet. Emits frame and selection changes; edits go through the window's commands."""

    current_frame_changed = Signal(int)
    selection_changed = Signal(int, int)  # first, last frame (inclusive)
    # dragging the right edge of a drawing's cell: (frame where the cell starts, new length);
    # `exposure_drag_finished` ends the gesture (one undo step for the whole drag)
    exposure_dragged = Signal(int, int)
    exposure_drag_finished = Signal()
    # an image file dropped on a cell: (timeline frame, local path); the window places it as a sketch
    sketch_dropped = Signal(int, str)

    def __init__(self, loader: ImageLoader | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self.frames: list[ResolvedFrame] = []
        self.runs: list[Run] = []
        self.spans: list[SegmentSpan] = []
        self.frame_w = 28.0
        self.current_frame = 1
        self.selection: tuple[int, int] = (1, 1)
        self._anchor = 1
        self._scrubbing = False
        self._exposure_drag: Run | None = None
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumHeight(110)
        self.horizontalScrollBar().valueChanged.connect(self._scrolled)
        if loader is not None:
            loader.ready.connect(self._thumbnail_ready)
            loader.failed.connect(lambda *_: self.viewport().update())
        self.paint_count = 0
        self.sketch_frames: set[int] = set()  # the sketch row: in-between cells with a sketch
        self.sheet_marks: dict[int, str] = {}  # frame -> ○ / ● from the imported timing sheet
        self.note_rows: list[tuple[str, dict[int, str]]] = []  # read-only sheet rows: (title, frame -> text)
        self._note_starts: list[list[int]] = []
        self.setAcceptDrops(True)

    def sizeHint(self) -> QSize:
        return QSize(800, 150)

    # -- data
    def set_frames(self, frames: list[ResolvedFrame], spans: list[SegmentSpan]) -> None:
        self.frames = frames
        self.runs = runs_of(frames)
        self.spans = spans
        count = len(frames)
        if count:
            self.current_frame = min(max(1, self.current_frame), count)
            first, last = self.selection
            self.selection = (min(first, count), min(last, count))
        self._update_scroll_range()
        self.viewport().update()

    def set_sheet_notes(self, marks: dict[int, str], rows: list[tuple[str, dict[int, str]]]) -> None:
        """The imported sheet's marks and read-only rows (shown, never edited here)."""
        self.sheet_marks = dict(marks)
        self.note_rows = list(rows)
        self._note_starts = [sorted(entries) for _title, entries in self.note_rows]  # sorted once, not per paint
        self.setMinimumHeight(110 + NOTE_H * len(self.note_rows))
        self.viewport().update()

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    def tooltip_at(self, x: float) -> str:
        """The whole story of the cell under x: frame, label (drawn elided), status and note."""
        if not self.frames:
            return ""
        frame = self.frames[self.frame_at(x) - 1]
        status = f", {frame.status.value}" if frame.status is not None and frame.take_id else ""
        note = f" — {frame.note}" if frame.note else ""
        return f"Frame {frame.frame}: {frame.label}{status}{note}"

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.ToolTip:
            text = self.tooltip_at(event.pos().x())
            if text:
                QToolTip.showText(event.globalPos(), text, self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)

    # -- geometry
    def frame_x(self, frame: int) -> float:
        """Left edge of a frame in viewport coordinates."""
        return (frame - 1) * self.frame_w - self.horizontalScrollBar().value()

    def frame_at(self, x: float) -> int:
        frame = int((x + self.horizontalScrollBar().value()) // self.frame_w) + 1
        return min(max(1, frame), max(1, self.frame_count))

    def cell_rect(self) -> QRect:
        height = self.viewport().height()
        notes = NOTE_H * len(self.note_rows)
        return QRect(0, RULER_H + notes, self.viewport().width(), height - RULER_H - notes - SEGMENT_H)

    def visible_frames(self) -> tuple[int, int]:
        first = self.frame_at(0)
        last = self.frame_at(self.viewport().width() - 1)
        return first, last

    def _update_scroll_range(self) -> None:
        total = int(self.frame_count * self.frame_w)
        bar = self.horizontalScrollBar()
        bar.setRange(0, max(0, total - self.viewport().width()))
        bar.setPageStep(max(1, self.viewport().width()))
        bar.setSingleStep(max(1, int(self.frame_w)))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._update_scroll_range()

    def set_zoom(self, frame_w: float, anchor_x: float | None = None) -> None:
        """Frame width in pixels; keeps the frame under `anchor_x` (default: the playhead) in place."""
        frame_w = min(MAX_FRAME_W, max(MIN_FRAME_W, frame_w))
        if anchor_x is None:
            anchor_x = self.frame_x(self.current_frame)
        anchor_frame = (anchor_x + self.horizontalScrollBar().value()) / self.frame_w
        self.frame_w = frame_w
        self._update_scroll_range()
        self.horizontalScrollBar().setValue(int(anchor_frame * frame_w - anchor_x))
        self.viewport().update()

    def zoom_in(self) -> None:
        self.set_zoom(self.frame_w * 1.25)

    def zoom_out(self) -> None:
        self.set_zoom(self.frame_w / 1.25)

    def ensure_visible(self, frame: int) -> None:
        x = self.frame_x(frame)
        width = self.viewport().width()
        bar = self.horizontalScrollBar()
        if x < 0:
            bar.setValue(int(bar.value() + x - self.frame_w))
        elif x + self.frame_w > width:
            bar.setValue(int(bar.value() + x + 2 * self.frame_w - width))

    # -- current frame and selection
    def set_current_frame(self, frame: int, emit: bool = True) -> None:
        if not self.frame_count:
            return
        frame = min(max(1, int(frame)), self.frame_count)
        if frame == self.current_frame:
            return
        old = self.current_frame
        self.current_frame = frame
        self.ensure_visible(frame)
        self._update_columns(old, frame)
        if emit:
            self.current_frame_changed.emit(frame)

    def _update_columns(self, *frames: int) -> None:
        height = self.viewport().height()
        for frame in frames:
            x = int(self.frame_x(frame))
            self.viewport().update(QRect(x - 2, 0, int(self.frame_w) + 5, height))

    def set_selection(self, first: int, last: int) -> None:
        first, last = sorted((int(first), int(last)))
        count = max(1, self.frame_count)
        self.selection = (min(max(1, first), count), min(max(1, last), count))
        self.viewport().update()
        self.selection_changed.emit(*self.selection)

    def select_span(self, span: SegmentSpan) -> None:
        self._anchor = span.start_frame
        self.set_selection(span.start_frame, span.start_frame + span.gap)

    def selected_spans(self) -> list[SegmentSpan]:
        """Key pairs the selection covers; a selection inside one segment picks that segment."""
        first, last = self.selection
        covered = [s for s in self.spans if first <= s.start_frame and s.start_frame + s.gap <= last]
        if covered:
            return covered
        return [s for s in self.spans if s.start_frame <= first < s.start_frame + s.gap
                or (first == last and s.start_frame <= first <= s.start_frame + s.gap)][:1]

    def span_at(self, frame: int) -> SegmentSpan | None:
        for span in self.spans:
            if span.start_frame <= frame < span.start_frame + span.gap:
                return span
        return None

    # -- events
    def _scrolled(self, _value: int) -> None:
        if self.loader is not None:
            self.loader.drop_pending()  # thumbnails scrolled out of view are not wanted any more
        self.viewport().update()

    def _thumbnail_ready(self, _ref) -> None:
        self.viewport().update(self.cell_rect())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton or not self.frame_count:
            return super().mousePressEvent(event)
        pos = event.position()
        frame = self.frame_at(pos.x())
        if pos.y() < RULER_H:
            self._scrubbing = True
            self.set_current_frame(frame)
            return
        if pos.y() >= self.viewport().height() - SEGMENT_H:
            span = self.span_at(frame)
            if span is not None:
                self.select_span(span)
                self.set_current_frame(frame)
            return
        edge = self.run_edge_at(pos.x())
        if edge is not None:
            self._exposure_drag = edge
            self.setCursor(Qt.CursorShape.SizeHorCursor)
            return
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.set_selection(self._anchor, frame)
        else:
            self._anchor = frame
            self.set_selection(frame, frame)
        self._scrubbing = True
        self.set_current_frame(frame)

    def run_edge_at(self, x: float, tolerance: float = 4.0) -> Run | None:
        """The drawing cell whose right edge is under `x` (drag it to change the exposure)."""
        if self.frame_w < 8:
            return None
        frame = self.frame_at(x)
        for run in self._runs_between(frame - 1, frame + 1):
            if run.frame.kind == "inbetween" or not run.frame.new_drawing or run.frame.take_id:
                continue
            edge = self.frame_x(run.last + 1)
            if abs(x - edge) <= tolerance:
                return run
        return None

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._exposure_drag is not None:
            run = self._exposure_drag
            length = max(1, round((event.position().x() - self.frame_x(run.first)) / self.frame_w))
            self.exposure_dragged.emit(run.first, length)
            return
        if self._scrubbing:
            frame = self.frame_at(event.position().x())
            if event.position().y() >= RULER_H:
                self.set_selection(self._anchor, frame)
            self.set_current_frame(frame)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._exposure_drag is not None:
            self._exposure_drag = None
            self.unsetCursor()
            self.exposure_drag_finished.emit()
        self._scrubbing = False
        super().mouseReleaseEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        delta = event.angleDelta().y() or event.angleDelta().x()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.frame_w * (1.25 if delta > 0 else 0.8), event.position().x())
        else:
            bar = self.horizontalScrollBar()
            bar.setValue(bar.value() - int(delta / 120 * 3 * self.frame_w))
        event.accept()

    # -- painting
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        self.paint_count += 1
        painter = QPainter(self.viewport())
        clip = event.rect()
        painter.fillRect(clip, COLORS["background"])
        if not self.frames:
            painter.setPen(COLORS["ruler_text"])
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, "No shot open")
            return
        first = self.frame_at(clip.left())
        last = self.frame_at(clip.right())
        self._paint_ruler(painter, first, last)
        self._paint_note_rows(painter, first, last)
        self._paint_cells(painter, first, last)
        self._paint_sheet_marks(painter, first, last)
        self._paint_segments(painter, first, last)
        self._paint_sketch_row(painter, first, last)
        self._paint_selection(painter)
        x = self.frame_x(self.current_frame)
        painter.setPen(QPen(COLORS["playhead"], 2))
        painter.drawRect(QRectF(x, 1, self.frame_w, self.viewport().height() - 2))
        painter.end()

    def _label_step(self) -> int:
        for step in (1, 2, 5, 10, 20, 50, 100, 200, 500):
            if step * self.frame_w >= 34:
                return step
        return 1000

    def _paint_ruler(self, painter: QPainter, first: int, last: int) -> None:
        painter.fillRect(QRect(0, 0, self.viewport().width(), RULER_H), COLORS["ruler"])
        step = self._label_step()
        font = QFont(painter.font())
        font.setPixelSize(11)
        painter.setFont(font)
        painter.setPen(COLORS["ruler_text"])
        start = max(1, first - first % step)
        for frame in range(start, last + 1):
            x = self.frame_x(frame)
            if frame % step == 0 or frame == 1:
                painter.drawLine(int(x), RULER_H - 6, int(x), RULER_H)
                painter.drawText(QRectF(x + 2, 0, 60, RULER_H - 2),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, str(frame))
            elif self.frame_w >= 6:
                painter.drawLine(int(x), RULER_H - 3, int(x), RULER_H)

    def _runs_between(self, first: int, last: int) -> list[Run]:
        # binary search: runs are sorted by first frame
        lo, hi = 0, len(self.runs)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.runs[mid].last < first:
                lo = mid + 1
            else:
                hi = mid
        found = []
        for run in self.runs[lo:]:
            if run.first > last:
                break
            found.append(run)
        return found

    def _paint_cells(self, painter: QPainter, first: int, last: int) -> None:
        area = self.cell_rect()
        font = QFont(painter.font())
        font.setPixelSize(10)
        painter.setFont(font)
        for run in self._runs_between(first, last):
            x = self.frame_x(run.first)
            width = run.length * self.frame_w
            rect = QRectF(x + 1, area.top() + CELL_PAD, max(1.0, width - 2), area.height() - 2 * CELL_PAD)
            frame = run.frame
            painter.fillRect(rect, run_color(frame))
            if run.length > 1 and self.frame_w >= 6:  # a hold: one cell, with a hold line drawn on
                painter.setPen(QPen(COLORS["hold"], 1))
                for i in range(1, run.length):
                    hx = x + i * self.frame_w
                    painter.drawLine(int(hx), int(rect.bottom() - 6), int(hx), int(rect.bottom() - 2))
                line_y = rect.bottom() - 4
                painter.drawLine(int(x + self.frame_w * 0.5), int(line_y), int(x + width - 4), int(line_y))
            thumb_rect = rect.adjusted(2, 2, -2, -16)
            if self.loader is not None and rect.width() >= 18 and thumb_rect.height() > 8:
                image = self.loader.get(frame.image)
                if image is not None:
                    scale = min(thumb_rect.width() / image.width, thumb_rect.height() / image.height)
                    w, h = image.width * scale, image.height * scale
                    target = QRectF(thumb_rect.left() + (thumb_rect.width() - w) / 2, thumb_rect.top(), w, h)
                    painter.fillRect(target, Qt.GlobalColor.white)
                    painter.drawImage(target, image.image)
                elif self.loader.error(frame.image):
                    painter.setPen(COLORS["missing"])
                    painter.drawText(thumb_rect, Qt.AlignmentFlag.AlignCenter, "missing")
            if frame.status == ReviewStatus.REJECTED or frame.note:
                painter.setPen(QPen(COLORS[ReviewStatus.REJECTED].lighter(150), 2))
                painter.drawLine(rect.topLeft(), rect.bottomRight())
                painter.drawLine(rect.bottomLeft(), rect.topRight())
            if frame.kind == "key" and frame.new_drawing:
                cx, top = int(x + min(self.frame_w, width) / 2), int(rect.top())
                painter.setBrush(COLORS["key_marker"])
                painter.setPen(Qt.PenStyle.NoPen)
                painter.drawPolygon(QPolygon([QPoint(cx, top - 2), QPoint(cx + 5, top + 4),
                                              QPoint(cx, top + 10), QPoint(cx - 5, top + 4)]))
                painter.setBrush(Qt.BrushStyle.NoBrush)
            if rect.width() >= 22:
                painter.setPen(COLORS["text"])
                # Elided from the left: "…-10" still tells T1-10 from T1-1 (the tooltip has it all).
                text = painter.fontMetrics().elidedText(frame.label, Qt.TextElideMode.ElideLeft,
                                                        int(rect.width() - 4))
                painter.drawText(QRectF(rect.left() + 2, rect.bottom() - 15, rect.width() - 4, 12),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)

    def _paint_note_rows(self, painter: QPainter, first: int, last: int) -> None:
        """Dialogue and camera work of the imported sheet: each entry from its frame to the next."""
        font = QFont(painter.font())
        font.setPixelSize(10)
        painter.setFont(font)
        for row, (title, entries) in enumerate(self.note_rows):
            top = RULER_H + row * NOTE_H
            painter.fillRect(QRectF(0, top, self.viewport().width(), NOTE_H), COLORS["note_row"])
            starts = self._note_starts[row]
            begin = max(0, bisect.bisect_right(starts, first) - 1)  # only the entries on screen
            for i in range(begin, len(starts)):
                frame = starts[i]
                if frame > last:
                    break
                end = starts[i + 1] if i + 1 < len(starts) else self.frame_count + 1
                if end <= first or frame > last or not entries[frame]:  # "": the entry before ends here
                    continue
                x0, x1 = self.frame_x(frame), self.frame_x(end)
                rect = QRectF(x0 + 1, top + 2, max(2.0, x1 - x0 - 2), NOTE_H - 4)
                painter.fillRect(rect, COLORS["note"])
                painter.setPen(COLORS["text"])
                text = painter.fontMetrics().elidedText(entries[frame], Qt.TextElideMode.ElideRight,
                                                        int(max(0.0, rect.width() - 4)))
                painter.drawText(rect.adjusted(2, 0, -2, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                                 text)
            painter.setPen(COLORS["ruler_text"])
            painter.drawText(QRectF(self.viewport().width() - 160, top, 156, NOTE_H),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, title)

    def _paint_sheet_marks(self, painter: QPainter, first: int, last: int) -> None:
        """The sheet's in-between (○) and reverse (●) marks on top of the cells they fall in."""
        if not self.sheet_marks:
            return
        font = QFont(painter.font())
        font.setPixelSize(11)
        font.setBold(True)
        painter.setFont(font)
        top = self.cell_rect().top() + CELL_PAD + 1
        side = min(14.0, max(6.0, self.frame_w - 2))
        for frame in sorted(f for f in self.sheet_marks if first <= f <= last):
            badge = QRectF(self.frame_x(frame) + (self.frame_w - side) / 2, top, side, side)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(COLORS["background"])  # a dark badge: readable over any thumbnail
            painter.drawRoundedRect(badge, 3, 3)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(COLORS["sheet_mark"])
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, self.sheet_marks[frame])

    def _paint_segments(self, painter: QPainter, first: int, last: int) -> None:
        top = self.viewport().height() - SEGMENT_H
        selected = {s.key for s in self.selected_spans()}
        for span in self.spans:
            end = span.start_frame + span.gap
            if end < first or span.start_frame > last:
                continue
            x0 = self.frame_x(span.start_frame) + self.frame_w / 2
            x1 = self.frame_x(end) + self.frame_w / 2
            color = COLORS["segment_selected"] if span.key in selected else COLORS["segment"]
            painter.fillRect(QRectF(x0, top + 3, x1 - x0, SEGMENT_H - 6), color)

    def _paint_sketch_row(self, painter: QPainter, first: int, last: int) -> None:
        """A pencil-grey tab with an "S" on the segment strip under each cell that carries a sketch."""
        top = self.viewport().height() - SEGMENT_H
        font = QFont(painter.font())
        font.setPixelSize(10)
        font.setBold(True)
        painter.setFont(font)
        for frame in sorted(f for f in self.sketch_frames if first <= f <= last):
            rect = QRectF(self.frame_x(frame) + 2, top + 1, max(6.0, self.frame_w - 4), SEGMENT_H - 2)
            painter.fillRect(rect, COLORS["sketch"])
            if self.frame_w >= 12:
                painter.setPen(COLORS["text"])
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "S")

    # -- sketches dropped on cells
    @staticmethod
    def _dropped_file(event) -> str | None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        local = [u.toLocalFile() for u in urls if u.isLocalFile()]
        return local[0] if len(local) == 1 else None

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self._dropped_file(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self._dropped_file(event)
        if not path or not self.frames:
            event.ignore()
            return
        event.acceptProposedAction()
        self.sketch_dropped.emit(self.frame_at(event.position().x()), path)

    def _paint_selection(self, painter: QPainter) -> None:
        first, last = self.selection
        x0 = self.frame_x(first)
        x1 = self.frame_x(last + 1)
        rect = QRectF(x0, RULER_H, x1 - x0, self.viewport().height() - RULER_H)
        painter.fillRect(rect, COLORS["selection"])
        painter.setPen(QPen(COLORS["selection_edge"], 1))
        painter.drawRect(rect.adjusted(0, 0, -1, -1))
