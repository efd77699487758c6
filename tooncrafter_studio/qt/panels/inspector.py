"""The segment inspector: how the selected key pair is in-betweened.

Every edit becomes one undoable SetSegmentSettings command (repeated edits of one field merge
into one undo step). Engine availability comes from `probe()` results gathered off the UI
thread by the window; an unavailable engine says why, with "Locate model…" when the model is
the problem.
"""

from __future__ import annotations

import random
from typing import Any

from PySide6.QtCore import QPointF, QSize, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...engines.base import ProbeResult
from ...engines.registry import engine_info
from ...engines.tooncrafter.engine import Settings as ToonCrafterSettings
from ...engines.tooncrafter.presets import PRESETS, estimate_run, preset_of
from ...engines.tooncrafter.timing import plan_passes
from ...project.commands import SetSegmentSettings, segment_settings
from ...project.document import SegmentSettings, Spacing
from ...project.resolve import SegmentSpan, derived_count
from ...project.spacing import inbetween_times
from ..session import Session
from ..widgets.sketch_row import sketches_ignored

SPACING_LABELS = {
    Spacing.LINEAR: "Linear",
    # Named as animators (and After Effects' "easy ease") say it; the chart below is the truth.
    Spacing.EASE_IN: "Slow out (of the first key)",
    Spacing.EASE_OUT: "Slow in (to the second key)",
    Spacing.EASE_IN_OUT: "Slow out and slow in",
    Spacing.EXPLICIT: "Drawn chart",
}
# The engine's own defaults, so that what the panel shows is what runs (and what the CLI runs).
PARAM_DEFAULTS: dict[str, Any] = {
    "steps": ToonCrafterSettings.steps, "cfg": ToonCrafterSettings.cfg, "frame_stride": ToonCrafterSettings.frame_stride,
    "fit": ToonCrafterSettings.fit, "colour_match": ToonCrafterSettings.colour_match,
    "memory": ToonCrafterSettings.memory,
}
MAX_SEED = 2**31 - 1
DEVICE_NAMES = {"cuda": "the GPU (CUDA)", "mps": "Apple's GPU (MPS)", "cpu": "the CPU"}


def probed_device(reason: str) -> str:
    """The device an available engine's probe reported ("CUDA, 20 GB free", "MPS", the CPU warning)."""
    if reason.startswith("CUDA") or "; CUDA" in reason:
        return "cuda"
    if reason.startswith("MPS") or "; MPS" in reason:
        return "mps"
    return "cpu"


def effective_count(settings: SegmentSettings, gap: int) -> int:
    if settings.offsets is not None:  # a timing sheet's marks decide
        return len(settings.offsets)
    if settings.times and settings.spacing == Spacing.EXPLICIT:
        return len(settings.times)
    return int(settings.count) if settings.count else derived_count(gap, settings.exposure)


def effective_times(settings: SegmentSettings, gap: int) -> list[float]:
    count = effective_count(settings, gap)
    if count < 1:
        return []
    if settings.offsets is not None:
        return [o / gap for o in settings.offsets if 0 < o < gap]
    if settings.spacing == Spacing.EXPLICIT and settings.times:
        return list(settings.times)
    spacing = settings.spacing.value if settings.spacing != Spacing.EXPLICIT else "linear"
    return inbetween_times(count, spacing)


class SpacingChart(QWidget):
    """The animator's spacing chart: the two keys at the ends, a tick per in-between; drag a tick."""

    times_edited = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.times: list[float] = []
        self._drag: int | None = None
        self.setMinimumHeight(56)
        self.setToolTip("Spacing chart: drag an in-between to change its timing")

    def sizeHint(self) -> QSize:
        return QSize(220, 56)

    def set_times(self, times: list[float]) -> None:
        self.times = list(times)
        self.update()

    def _x(self, t: float) -> float:
        return 10 + t * (self.width() - 20)

    def _t(self, x: float) -> float:
        return (x - 10) / max(1, self.width() - 20)

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        mid = self.height() / 2
        painter.setPen(QPen(QColor(150, 150, 160), 1))
        painter.drawLine(QPointF(self._x(0), mid), QPointF(self._x(1), mid))
        key_h = max(12.0, mid * 0.8)  # ticks grow with the chart, so they are easy to grab
        painter.setPen(QPen(QColor(250, 210, 70), 3))
        for t in (0.0, 1.0):
            painter.drawLine(QPointF(self._x(t), mid - key_h), QPointF(self._x(t), mid + key_h))
        painter.setPen(QPen(QColor(206, 146, 40), 2))
        for i, t in enumerate(self.times):
            height = key_h * (0.55 if i != self._drag else 0.75)
            painter.drawLine(QPointF(self._x(t), mid - height), QPointF(self._x(t), mid + height))
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if not self.times:
            return
        x = event.position().x()
        nearest = min(range(len(self.times)), key=lambda i: abs(self._x(self.times[i]) - x))
        if abs(self._x(self.times[nearest]) - x) < 8:
            self._drag = nearest

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag is None:
            return
        i = self._drag
        low = self.times[i - 1] if i > 0 else 0.0
        high = self.times[i + 1] if i + 1 < len(self.times) else 1.0
        margin = 0.005
        self.times[i] = min(high - margin, max(low + margin, self._t(event.position().x())))
        self.update()

    def mouseReleaseEvent(self, _event: QMouseEvent) -> None:  # noqa: N802
        if self._drag is not None:
            self._drag = None
            self.update()
            self.times_edited.emit([round(t, 4) for t in self.times])


class SegmentInspector(QWidget):
    locate_model = Signal()
    setup_engine = Signal()  # install the engine / download the model (qt/dialogs/engine_setup.py)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.span: SegmentSpan | None = None
        self.probes: dict[str, ProbeResult] = {}
        self.capabilities: dict[str, Any] = {}
        self._updating = False

        self.title = QLabel("Select a key pair on the timeline.")
        self.title.setWordWrap(True)
        self.count = QSpinBox()
        self.count.setRange(0, 1000)
        self.count.setSpecialValueText("auto")
        self.count.setToolTip("In-betweens: auto derives them from the gap and the exposure")
        self.count_note = QLabel()  # why the count stops where it does, or why it does not fit
        self.count_note.setObjectName("count_note")
        self.count_note.setWordWrap(True)
        self.exposure = QSpinBox()
        self.exposure.setRange(1, 24)
        self.exposure.setSuffix("s")
        self.exposure.setToolTip("In-betweens on 1s, 2s, 3s...")
        self.spacing = QComboBox()
        for spacing, label in SPACING_LABELS.items():
            self.spacing.addItem(label, spacing.value)
        self.chart = SpacingChart()
        self.engine = QComboBox()
        self.engine_status = QLabel()
        self.engine_status.setWordWrap(True)
        self.engine_status.setObjectName("engine_status")
        self.locate_button = QPushButton("Locate model…")
        self.locate_button.setVisible(False)
        self.setup_button = QPushButton("Install engine / Download model…")
        self.setup_button.setVisible(False)
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("e.g. a girl turns her head, anime")
        self.fixed_seed = QCheckBox("fixed")
        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.dice = QToolButton()
        self.dice.setText("Roll")
        self.dice.setToolTip("Roll a new seed")
        self.preset = QComboBox()
        for name, steps in PRESETS.items():
            self.preset.addItem(f"{name.capitalize()} ({steps} steps)", name)
        self.preset.addItem("Custom", "custom")
        self.preset.setToolTip("Draft: fewer steps on the same schedule, for judging timing; final: full quality")
        self.steps = QSpinBox()
        self.steps.setRange(1, 60)
        self.time_estimate = QLabel()
        self.time_estimate.setObjectName("time_estimate")
        self.time_estimate.setWordWrap(True)
        self.cfg = QDoubleSpinBox()
        self.cfg.setRange(1.0, 15.0)
        self.cfg.setSingleStep(0.5)
        self.frame_stride = QSpinBox()
        self.frame_stride.setRange(1, 30)
        self.fit = QComboBox()
        self.fit.addItem("Letterbox (keep all)", "letterbox")
        self.fit.addItem("Crop (fill)", "crop")
        self.color_match = QCheckBox("Match the keys' colours")
        self.memory_mode = QComboBox()
        for mode in ("auto", "high", "balanced", "low"):
            self.memory_mode.addItem(mode, mode)

        self.sketch_scale = QDoubleSpinBox()  # sketch guidance strength (sketches sit on the sheet's cells)
        self.sketch_scale.setRange(0.0, 1.5)
        self.sketch_scale.setSingleStep(0.05)
        self.sketch_scale.setToolTip("How strongly the sketches on this segment's in-between cells steer "
                                     "ToonCrafter (0 = not at all; default 0.6). Drop images on in-between cells "
                                     "to add sketches.")

        self.sketch_note = QLabel()  # sketches on this pair that its engine will not use
        self.sketch_note.setObjectName("sketch_note")
        self.sketch_note.setWordWrap(True)
        self.sketch_note.setStyleSheet("color: #ffb74d")
        self.sketch_note.setVisible(False)
        self.seed_note = QLabel("This engine is deterministic: the seed changes nothing. For other in-betweens "
                                "change Spacing, In-betweens or Engine.")
        self.seed_note.setWordWrap(True)
        self.seed_note.setObjectName("seed_note")
        self.seed_note.setVisible(False)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.fixed_seed)
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.dice)
        form = QFormLayout()
        form.addRow("In-betweens", self.count)
        form.addRow("", self.count_note)
        form.addRow("Exposure", self.exposure)
        form.addRow("Spacing", self.spacing)
        form.addRow("", self.chart)
        self.chart_hint = QLabel("Drag a tick to retime it.")
        self.chart_hint.setToolTip("Each tick is an in-between; drag it to retime it. The chart is what the "
                                   "engine gets (slow in / slow out only preset it).")
        self.chart_hint.setStyleSheet("color: #9a9aa2")
        form.addRow("", self.chart_hint)
        form.addRow("Engine", self.engine)
        form.addRow("", self.engine_status)
        form.addRow("", self.locate_button)
        form.addRow("", self.setup_button)
        form.addRow("Prompt", self.prompt)
        form.addRow("Seed", seed_row)
        form.addRow("Preset", self.preset)
        form.addRow("", self.seed_note)
        form.addRow("Steps", self.steps)
        form.addRow("", self.time_estimate)
        form.addRow("CFG scale", self.cfg)
        form.addRow("Frame stride", self.frame_stride)
        form.addRow("Fit", self.fit)
        form.addRow("", self.color_match)
        form.addRow("Memory", self.memory_mode)
        form.addRow("Sketch strength", self.sketch_scale)
        form.addRow("", self.sketch_note)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(form)
        layout.addStretch(1)

        self.count.valueChanged.connect(lambda v: self._edit("count", count=v or None, offsets=None))
        self.exposure.valueChanged.connect(lambda v: self._edit("exposure", exposure=v, offsets=None))
        self.spacing.currentIndexChanged.connect(self._spacing_chosen)
        self.chart.times_edited.connect(
            lambda times: self._edit("times", spacing=Spacing.EXPLICIT, times=times, count=None, offsets=None))
        self.engine.currentIndexChanged.connect(
            lambda _i: self._edit("engine", engine=self.engine.currentData()))
        self.prompt.editingFinished.connect(lambda: self._edit("prompt", prompt=self.prompt.text()))
        self.fixed_seed.toggled.connect(self._seed_toggled)
        self.seed.valueChanged.connect(lambda v: self._edit("seed", seed=v) if self.fixed_seed.isChecked() else None)
        self.dice.clicked.connect(self.roll_seed)
        self.steps.valueChanged.connect(lambda v: self._edit_param("steps", v))
        self.preset.currentIndexChanged.connect(self._preset_chosen)
        self.cfg.valueChanged.connect(lambda v: self._edit_param("cfg", v))
        self.frame_stride.valueChanged.connect(lambda v: self._edit_param("frame_stride", v))
        self.fit.currentIndexChanged.connect(lambda _i: self._edit_param("fit", self.fit.currentData()))
        self.color_match.toggled.connect(lambda v: self._edit_param("colour_match", bool(v)))
        self.memory_mode.currentIndexChanged.connect(
            lambda _i: self._edit_param("memory", self.memory_mode.currentData()))
        self.locate_button.clicked.connect(self.locate_model.emit)
        self.setup_button.clicked.connect(self.setup_engine.emit)
        self.sketch_scale.valueChanged.connect(lambda v: self._edit("sketch_scale", sketch_scale=round(v, 3)))
        self.set_engines([], {})
        self.refresh()

    # -- engines
    def set_engines(self, ids: list[str], probes: dict[str, ProbeResult],
                    capabilities: dict[str, Any] | None = None) -> None:
        self.probes = dict(probes)
        self.capabilities = dict(capabilities or {})
        self._updating = True
        current = self.engine.currentData()
        self.engine.clear()
        for engine_id in ids or ["flow"]:
            probe = self.probes.get(engine_id)
            suffix = "" if probe is None or probe.available else "  (unavailable)"
            self.engine.addItem(f"{engine_id}{suffix}", engine_id)
        if current is not None:
            index = self.engine.findData(current)
            if index >= 0:
                self.engine.setCurrentIndex(index)
        self._updating = False
        self.refresh()

    def engine_state(self, engine_id: str) -> tuple[bool | None, str]:
        probe = self.probes.get(engine_id)
        if probe is None:
            return None, "Checking whether this engine can run here…"
        return probe.available, probe.reason

    # -- document
    def set_span(self, span: SegmentSpan | None) -> None:
        self.span = span
        self.refresh()

    def settings(self) -> SegmentSettings:
        shot = self.session.shot
        if shot is None or self.span is None:
            return SegmentSettings()
        return segment_settings(shot, self.span.key)

    def refresh(self) -> None:
        shot = self.session.shot
        span = self.span
        if shot is not None and span is not None and span.key not in {s.key for s in self.session.spans()}:
            span = self.span = None
        enabled = shot is not None and span is not None
        for widget in self.findChildren(QWidget):
            if widget is not self.title:
                widget.setEnabled(enabled)
        settings = self.settings()
        self._updating = True
        try:
            if enabled:
                start = shot.drawings[span.start_key]
                end = shot.drawings[span.end_key]
                label_a = start.label or f"{start.source_frame + 1:04d}"
                label_b = end.label or f"{end.source_frame + 1:04d}"
                count = effective_count(settings, span.gap)
                sheet = ("<br>on the frames the timing sheet marks; a count, exposure or spacing set here "
                         "replaces them" if settings.offsets is not None else "")
                self.title.setText(f"<b>Keys {label_a} → {label_b}</b><br>frames {span.start_frame}–"
                                   f"{span.start_frame + span.gap}, gap {span.gap}: {count} in-between"
                                   f"{'s' if count != 1 else ''}{sheet}")
                self.count.setSpecialValueText(f"sheet ({len(settings.offsets)})" if settings.offsets is not None
                                               else f"auto ({derived_count(span.gap, settings.exposure)})")
                self.chart.set_times(effective_times(settings, span.gap))
            else:
                self.title.setText("Select a key pair on the timeline (set keys with K).")
                self.chart.set_times([])
            self._limit_count(settings, span if enabled else None)
            self.count.setValue(int(settings.count or 0))
            self.exposure.setValue(int(settings.exposure))
            self.spacing.setCurrentIndex(max(0, self.spacing.findData(Spacing(settings.spacing).value)))
            index = self.engine.findData(settings.engine)
            if index < 0:
                self.engine.addItem(f"{settings.engine}  (not installed)", settings.engine)
                index = self.engine.count() - 1
            self.engine.setCurrentIndex(index)
            self.prompt.setText(settings.prompt)
            self.fixed_seed.setChecked(settings.seed is not None)
            self.seed.setValue(int(settings.seed or 0) % (MAX_SEED + 1))
            params = {**PARAM_DEFAULTS, **settings.params}
            self.steps.setValue(int(params["steps"]))
            self.preset.setCurrentIndex(max(0, self.preset.findData(preset_of(int(params["steps"])) or "custom")))
            self.time_estimate.setText(self._estimate_text(params, span, settings.engine) if enabled else "")
            self.cfg.setValue(float(params["cfg"]))
            self.frame_stride.setValue(int(params["frame_stride"]))
            self.fit.setCurrentIndex(max(0, self.fit.findData(params["fit"])))
            self.color_match.setChecked(bool(params["colour_match"]))
            self.memory_mode.setCurrentIndex(max(0, self.memory_mode.findData(params["memory"])))
            self.sketch_scale.setValue(float(settings.sketch_scale))
            count = len(settings.sketches)
            self.sketch_scale.setSuffix(f"   ({count} sketch{'es' if count != 1 else ''})")
            ignored = sketches_ignored(shot, span) if enabled else ""
            self.sketch_note.setText(ignored)
            self.sketch_note.setVisible(bool(ignored))
            self._refresh_engine(settings.engine)
        finally:
            self._updating = False

    def _limit_count(self, settings: SegmentSettings, span: SegmentSpan | None) -> None:
        """One in-between per frame at most: the box stops there and says why next to it."""
        if span is None:
            self.count.setMaximum(1000)
            self.count_note.setText("")
            return
        fits = max(0, span.gap - 1)
        asked = int(settings.count or 0)
        # a count saved before (or left by deleting frames) still shows as it is, with the reason
        self.count.setMaximum(max(fits, asked))
        apart = f"the keys are {span.gap} frame{'s' if span.gap != 1 else ''} apart"
        if fits == 0:
            text, color = f"No in-between fits: {apart}. Insert frames between the keys first.", "#ff8a80"
        elif asked > fits:
            text, color = f"{asked} in-betweens do not fit: {apart}, at most {fits} (one per frame).", "#ff8a80"
        elif not asked and derived_count(span.gap, settings.exposure) < 1:
            text, color = (f"On {settings.exposure}s nothing fits: {apart}. Choose a shorter exposure or a "
                           "count.", "#ff8a80")
        else:
            text, color = f"At most {fits}: {apart} (one in-between per frame).", "#9a9aa2"
        self.count_note.setText(text)
        self.count_note.setStyleSheet(f"color: {color}")

    def _refresh_engine(self, engine_id: str) -> None:
        available, reason = self.engine_state(engine_id)
        if available is None:
            text, color = reason, "#c8c8c8"
        elif available:
            text, color = f"Ready. {reason}".strip(), "#7fd18b"
        else:
            text, color = f"Unavailable: {reason}", "#ff8a80"
        self.engine_status.setText(text)
        self.engine_status.setStyleSheet(f"color: {color}")
        lowered = reason.lower()
        self.locate_button.setVisible(available is False and ("model" in lowered or "checkpoint" in lowered))
        self.setup_button.setVisible(available is False and engine_id == "tooncrafter"
                                     and ("install" in lowered or "no tooncrafter model" in lowered))
        caps = self.capabilities.get(engine_id)
        diffusion = caps is not None and getattr(caps, "supports_prompt", False)
        enabled = self.span is not None and self.session.shot is not None
        for widget in (self.prompt, self.preset, self.steps, self.cfg, self.frame_stride, self.fit,
                       self.memory_mode, self.sketch_scale):
            widget.setEnabled(enabled and (diffusion or caps is None and engine_id == "tooncrafter"))
        # A seed only matters to an engine whose result changes with it: say so instead of offering it.
        variants = caps is None or getattr(caps, "seed_variants", False)
        for widget in (self.fixed_seed, self.dice):
            widget.setEnabled(enabled and variants)
        self.seed.setEnabled(enabled and variants and self.fixed_seed.isChecked())
        self.seed_note.setVisible(enabled and not variants)

    # -- edits
    def _edit(self, field: str, **changes: Any) -> None:
        if self._updating or self.span is None:
            return
        self.session.push(SetSegmentSettings(self.span.key, merge_id=f"inspector-{field}", **changes))

    def _edit_param(self, name: str, value: Any) -> None:
        if self._updating or self.span is None:
            return
        params = dict(self.settings().params)
        params[name] = value
        self._edit(f"param-{name}", params=params)

    def _preset_chosen(self, _index: int) -> None:
        name = self.preset.currentData()
        if not self._updating and name in PRESETS:
            self.steps.setValue(PRESETS[name])  # the Steps box records the edit

    def _estimate_text(self, params: dict[str, Any], span: SegmentSpan, engine_id: str) -> str:
        """The ToonCrafter time of this segment at its steps (no torch: a measured or table figure), on the
        device its probe found; nothing for an engine without steps, or one that cannot run here."""
        caps = self.capabilities.get(engine_id)
        if caps is None:
            try:
                caps = engine_info(engine_id).capabilities
            except Exception:  # an engine that cannot even be imported: its status says why
                return ""
        available, reason = self.engine_state(engine_id)
        if not caps.needs_gpu or not available:
            return ""
        times = effective_times(self.settings(), span.gap)
        if not times:
            return ""
        device = str(params.get("device") or probed_device(reason))
        estimate = estimate_run(int(params["steps"]), device, len(plan_passes(times)), dtype=str(params.get("dtype") or "fp16"))
        return f"ToonCrafter on {DEVICE_NAMES.get(device, device)}: {estimate.describe()}"

    def _spacing_chosen(self, _index: int) -> None:
        if self._updating or self.span is None:
            return
        spacing = Spacing(self.spacing.currentData())
        if spacing == Spacing.EXPLICIT:
            self._edit("spacing", spacing=spacing, times=effective_times(self.settings(), self.span.gap), count=None,
                       offsets=None)
        else:
            self._edit("spacing", spacing=spacing, times=None, offsets=None)

    def _seed_toggled(self, fixed: bool) -> None:
        self.seed.setEnabled(fixed and self.span is not None)
        self._edit("seed", seed=self.seed.value() if fixed else None)

    def roll_seed(self) -> None:
        """The dice: a new fixed seed."""
        if self.span is None:
            return
        value = random.randint(0, MAX_SEED)
        self._updating = True
        self.fixed_seed.setChecked(True)
        self.seed.setValue(value)
        self._updating = False
        self._edit("seed", seed=value)
