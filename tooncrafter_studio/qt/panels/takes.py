"""Review: which take frame is under the playhead, the pending frames to visit, and the takes list.

Accepting and rejecting are undoable commands (SetFrameStatus / SetTakeStatus); switching the
active take is SetActiveTake. A rejected frame keeps its slot: the timeline shows the previous
drawing held there, crossed out.
"""

from __future__ import annotations

from collections import Counter

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from ...project.commands import SetActiveTake
from ...project.document import ReviewStatus, Shot
from ...project.resolve import ResolvedFrame, SegmentSpan
from ..session import Session


def pending_frames(frames: list[ResolvedFrame]) -> list[int]:
    """Timeline frames where a pending in-between starts (one stop per drawing)."""
    return [f.frame for f in frames if f.status == ReviewStatus.PENDING and f.new_drawing and f.take_id]


def next_pending(frames: list[ResolvedFrame], current: int, forward: bool = True) -> int | None:
    stops = pending_frames(frames)
    if forward:
        after = [f for f in stops if f > current]
        return after[0] if after else (stops[0] if stops else None)
    before = [f for f in stops if f < current]
    return before[-1] if before else (stops[-1] if stops else None)


def take_summary(shot: Shot, take_id: str) -> str:
    take = shot.takes[take_id]
    counts = Counter(f.status for f in take.frames)
    engine = take.engine.get("engine", "?") if isinstance(take.engine, dict) else str(take.engine)
    seed = "" if take.seed is None else f", seed {take.seed}"
    info = take.params.get("engine_info") if isinstance(take.params, dict) else None
    confidence = info.get("confidence") if isinstance(info, dict) else None
    sure = ""  # the engine's own confidence (flow engine): the least sure in-between, and its warning
    if isinstance(confidence, list) and confidence and all(isinstance(c, (int, float)) for c in confidence):
        sure = f", confidence {min(confidence):.2f}"
        if isinstance(info.get("message"), str) and info["message"]:
            sure += f" ⚠ {info['message']}"
    return (f"{take.label or take.id} — {engine}{seed}: {len(take.frames)} frames, "
            f"{counts[ReviewStatus.ACCEPTED]} ✓ {counts[ReviewStatus.REJECTED]} ✗ "
            f"{counts[ReviewStatus.PENDING]} pending{sure}")


class TakesPanel(QWidget):
    """The takes of the current segment: double-click (or Enter) makes one active; the selected
    non-active take is the B side of A/B flip."""

    compare_changed = Signal(object)  # take id or None

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.span: SegmentSpan | None = None
        self.title = QLabel("No key pair selected.")
        self.title.setWordWrap(True)
        self.list = QListWidget()
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)  # elided, whole text in the tooltip
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setMinimumHeight(60)
        self.list.itemActivated.connect(self._activate)
        self.list.currentItemChanged.connect(self._compare)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title)
        layout.addWidget(self.list)
        self.compare_take: str | None = None

    def set_span(self, span: SegmentSpan | None) -> None:
        self.span = span
        self.refresh()

    def take_ids(self) -> list[str]:
        shot = self.session.shot
        if shot is None or self.span is None:
            return []
        segment = shot.segments.get(self.span.key)
        return [t for t in segment.take_ids if t in shot.takes] if segment is not None else []

    def active_take(self) -> str | None:
        shot = self.session.shot
        if shot is None or self.span is None:
            return None
        segment = shot.segments.get(self.span.key)
        return segment.active_take if segment is not None else None

    def refresh(self) -> None:
        shot = self.session.shot
        ids = self.take_ids()
        active = self.active_take()
        self.list.blockSignals(True)
        self.list.clear()
        for take_id in ids:
            item = QListWidgetItem(take_summary(shot, take_id))
            item.setToolTip(item.text())  # the row is elided when the panel is narrow
            item.setData(Qt.ItemDataRole.UserRole, take_id)
            if take_id == active:
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
                item.setText("▶ " + item.text())
            else:
                item.setForeground(QBrush(QColor(190, 190, 196)))
            self.list.addItem(item)
            if take_id == self.compare_take:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        if self.compare_take not in ids:
            self.compare_take = None
        if self.span is None:
            self.title.setText("No key pair selected.")
        elif not ids:
            self.title.setText("No takes yet: press G to generate in-betweens.")
        else:
            self.title.setText(f"{len(ids)} take{'s' if len(ids) != 1 else ''}; double-click to make one active.")

    def _activate(self, item: QListWidgetItem) -> None:
        self.set_active(item.data(Qt.ItemDataRole.UserRole))

    def set_active(self, take_id: str | None) -> None:
        if self.span is not None and take_id != self.active_take():
            self.session.push(SetActiveTake(self.span.key, take_id))

    def offer(self, take_id: str) -> None:
        """Select a take that came beside the active one: it is the B side of A/B flip (B), and a
        double-click (or ]) makes it active."""
        self.refresh()
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == take_id:
                self.list.setCurrentRow(row)  # _compare makes it the compared take
                return

    def step_active(self, delta: int) -> None:
        """Make the next (or previous) take active, for [ and ]."""
        ids = self.take_ids()
        if not ids:
            return
        active = self.active_take()
        index = ids.index(active) if active in ids else -1
        self.set_active(ids[(index + delta) % len(ids)])

    def _compare(self, current: QListWidgetItem | None, _previous) -> None:
        take_id = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        self.compare_take = take_id if take_id != self.active_take() else None
        self.compare_changed.emit(self.compare_take)
