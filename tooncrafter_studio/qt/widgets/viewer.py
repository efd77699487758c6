"""The viewer: the current frame at fit / 100 % / any zoom, with onion skin, light table and A/B flip.

The widget only paints what it is given (`show_frame`); which pictures those are is decided by
the window from the resolved timeline. `Playback` drives the current frame at the shot's fps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QMouseEvent, QPainter, QPaintEvent, QPen, QWheelEvent
from PySide6.QtWidgets import QWidget

from .thumbnails import DisplayImage

ONION_BEFORE = QColor(220, 40, 40)
ONION_AFTER = QColor(30, 150, 60)
LIGHT_TABLE_A = QColor(220, 60, 40)
LIGHT_TABLE_B = QColor(40, 90, 230)
HINT_CLOSE = 22  # the hint banner's close box (px)


@dataclass
class Layer:
    """A picture drawn over the current frame with multiply blending (onion skin, light table)."""

    image: DisplayImage
    opacity: float


def tinted(image: DisplayImage, color: QColor) -> DisplayImage:
    """The drawing's dark lines in `color`, everything else white: ready to multiply over another
    frame. Only ink counts (luminance below ~120), so coloured fills and backgrounds of a
    full-colour frame do not darken the frame they are laid over."""
    rgb = image.array[:, :, :3].astype(np.float32)
    luminance = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    darkness = np.clip((120.0 - luminance) / 70.0, 0.0, 1.0)[:, :, None]
    tint = np.array([color.red(), color.green(), color.blue()], np.float32)
    out = 255.0 - darkness * (255.0 - tint)
    if image.array.shape[2] == 4:  # transparent parts of a drawing leave the frame alone
        alpha = image.array[:, :, 3:4].astype(np.float32) / 255.0
        out = 255.0 - (255.0 - out) * alpha
    return DisplayImage.from_array(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def onion_opacities(count: int, nearest: float, falloff: float = 0.6) -> list[float]:
    """Opacity of the 1st, 2nd, ... onion drawing away from the current frame (nearest first)."""
    return [nearest * falloff ** i for i in range(count)]


class ViewerWidget(QWidget):
    """Paints the current frame and its layers; zoom with the wheel, pan with a drag."""

    zoom_changed = Signal(float)
    hint_dismissed = Signal()  # the user closed the hint banner (its ×)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: DisplayImage | None = None
        self.layers: list[Layer] = []
        self.caption = ""
        self.badge = ""  # e.g. "B", "LIGHT TABLE"
        self.border: QColor | None = None
        self.hint = ""
        self.overlay = ""  # e.g. "preview — step 12/50": says the picture is not a drawing of the shot
        self.overlay_color = QColor(120, 40, 160, 225)
        self.fit = True
        self.scale = 1.0
        self.pan = QPointF(0, 0)
        self._drag_from: QPointF | None = None
        self.frame_size = QSize(0, 0)  # the shot's size, for an empty frame
        self.paint_count = 0
        self._moving = False
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(150)
        self._settle.timeout.connect(self._settled)
        self.setMinimumSize(320, 200)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setAutoFillBackground(False)

    def sizeHint(self) -> QSize:
        return QSize(960, 560)

    # -- content
    def show_frame(self, image: DisplayImage | None, layers: list[Layer] | None = None, caption: str = "",
                   badge: str = "", border: QColor | None = None, moving: bool = False,
                   overlay: str = "", overlay_color: QColor | None = None) -> None:
        """Show a picture. `moving`: frames are changing quickly (playback, scrubbing), so scale
        without smoothing until they settle, then repaint smoothly. `overlay`: a banner across the
        middle of the picture (denoising previews, a missing drawing), in `overlay_color`."""
        if moving:
            self._moving = True
            self._settle.start()
        self.image = image
        self.layers = layers or []
        self.caption = caption
        self.badge = badge
        self.border = border
        self.overlay = overlay
        self.overlay_color = overlay_color or QColor(120, 40, 160, 225)
        # a preview (overlay) is usually the model's size, not the shot's: it is stretched over the
        # frame's place so zoom and pan do not jump while it shows
        if image is not None and (not overlay or self.frame_size.isEmpty()):
            self.frame_size = QSize(image.width, image.height)
        self.update()

    def _settled(self) -> None:
        self._moving = False
        self.update()

    def set_hint(self, text: str) -> None:
        self.hint = text
        self.update()

    def _hint_font(self) -> QFont:
        font = QFont(self.font())
        font.setPixelSize(13)
        return font

    def hint_rect(self) -> QRectF:
        """Where the hint banner goes over a picture: a strip along the bottom, its own space (the
        picture fits above it, never under it). Empty without a hint."""
        if not self.hint or self.frame_size.isEmpty():
            return QRectF()
        flags = int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap)
        width = max(40, self.width() - 16 - 2 * HINT_CLOSE)
        bounds = QFontMetrics(self._hint_font()).boundingRect(0, 0, width, 10_000, flags, self.hint)
        height = bounds.height() + 12
        return QRectF(8, self.height() - height - 6, self.width() - 16, height)

    def hint_close_rect(self) -> QRectF:
        rect = self.hint_rect()
        return QRectF() if rect.isEmpty() else QRectF(rect.right() - HINT_CLOSE, rect.top(), HINT_CLOSE, HINT_CLOSE)

    def _picture_height(self) -> float:
        """The height pictures fit into: the widget less the hint banner."""
        rect = self.hint_rect()
        return self.height() - (self.height() - rect.top() if not rect.isEmpty() else 0)

    # -- zoom and pan
    def effective_scale(self) -> float:
        if not self.fit or self.frame_size.isEmpty():
            return self.scale
        return min((self.width() - 16) / self.frame_size.width(), (self._picture_height() - 16) / self.frame_size.height())

    def zoom_fit(self) -> None:
        self.fit = True
        self.pan = QPointF(0, 0)
        self.update()
        self.zoom_changed.emit(self.effective_scale())

    def zoom_to(self, scale: float) -> None:
        self.fit = False
        self.scale = min(32.0, max(0.05, scale))
        self.update()
        self.zoom_changed.emit(self.scale)

    def zoom_actual(self) -> None:
        self.pan = QPointF(0, 0)
        self.zoom_to(1.0)

    def zoom_in(self) -> None:
        self.zoom_to(self.effective_scale() * 1.25)

    def zoom_out(self) -> None:
        self.zoom_to(self.effective_scale() / 1.25)

    def image_rect(self) -> QRectF:
        scale = self.effective_scale()
        w, h = self.frame_size.width() * scale, self.frame_size.height() * scale
        return QRectF((self.width() - w) / 2 + self.pan.x(), (self._picture_height() - h) / 2 + self.pan.y(), w, h)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        self.zoom_to(self.effective_scale() * factor)
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.hint_close_rect().contains(event.position()):
            self.set_hint("")
            self.hint_dismissed.emit()
            return
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            self._drag_from = event.position()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag_from is not None:
            if self.fit:
                self.fit, self.scale = False, self.effective_scale()
            self.pan += event.position() - self._drag_from
            self._drag_from = event.position()
            self.update()

    def mouseReleaseEvent(self, _event: QMouseEvent) -> None:  # noqa: N802
        self._drag_from = None

    def mouseDoubleClickEvent(self, _event: QMouseEvent) -> None:  # noqa: N802
        self.zoom_fit()

    # -- painting
    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802
        self.paint_count += 1
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(28, 28, 31))
        if self.frame_size.isEmpty():
            painter.setPen(QColor(170, 170, 176))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self.hint or "Open a shot to start.")
            return
        target = self.image_rect()
        self._paint_checker(painter, target)
        smooth = self.effective_scale() < 1.0 and not self._moving
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        if self.image is not None:
            painter.drawImage(target, self.image.image)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Multiply)
        for layer in self.layers:
            painter.setOpacity(layer.opacity)
            painter.drawImage(target, layer.image.image)
        painter.setOpacity(1.0)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
        if self.border is not None:
            painter.setPen(QPen(self.border, 4))
            painter.drawRect(target.adjusted(-2, -2, 2, 2))
        self._paint_text(painter)
        painter.end()

    def _paint_checker(self, painter: QPainter, target: QRectF) -> None:
        painter.fillRect(target, QColor(255, 255, 255))
        if self.image is None or self.image.array.shape[2] != 4:
            return
        size = 12
        grey = QColor(214, 214, 214)
        visible = target.intersected(QRectF(self.rect()))
        y = visible.top()
        row = 0
        while y < visible.bottom():
            x = visible.left() + (size if row % 2 else 0)
            while x < visible.right():
                painter.fillRect(QRectF(x, y, size, size).intersected(visible), grey)
                x += 2 * size
            y += size
            row += 1

    def _paint_text(self, painter: QPainter) -> None:
        font = QFont(painter.font())
        font.setPixelSize(13)
        painter.setFont(font)
        if self.caption:
            rect = QRectF(8, 6, self.width() - 16, 22)
            painter.fillRect(QRectF(4, 4, painter.fontMetrics().horizontalAdvance(self.caption) + 12, 22),
                             QColor(0, 0, 0, 150))
            painter.setPen(QColor(240, 240, 240))
            painter.drawText(rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.caption)
        if self.badge:
            width = painter.fontMetrics().horizontalAdvance(self.badge) + 16
            rect = QRectF(self.width() - width - 6, 4, width, 22)
            painter.fillRect(rect, QColor(200, 120, 20, 220))
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self.badge)
        if self.overlay:
            font.setPixelSize(16)
            font.setBold(True)
            painter.setFont(font)
            width = painter.fontMetrics().horizontalAdvance(self.overlay) + 28
            rect = QRectF((self.width() - width) / 2, 36, width, 30)
            painter.fillRect(rect, self.overlay_color)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self.overlay)
            font.setPixelSize(13)
            font.setBold(False)
            painter.setFont(font)
        rect = self.hint_rect()
        if not rect.isEmpty():
            flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
            painter.setFont(self._hint_font())
            painter.fillRect(rect, QColor(0, 0, 0, 200))
            painter.setPen(QColor(250, 230, 150))
            painter.drawText(rect.adjusted(HINT_CLOSE, 0, -HINT_CLOSE, 0), flags, self.hint)
            painter.setPen(QColor(220, 220, 220))
            painter.drawText(self.hint_close_rect(), Qt.AlignmentFlag.AlignCenter, "×")


class Playback(QObject):
    """Plays frames at `fps` in real time (late frames are skipped, never slowed down), with a loop
    and an optional in/out range. Emits `frame(n)`; the window shows it."""

    frame = Signal(int)
    state_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.fps = 24.0
        self.loop = True
        self.range: tuple[int, int] | None = None
        self.frame_count = 1
        self.current = 1
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._start_time = 0.0
        self._start_frame = 1
        self.frames_emitted = 0

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def bounds(self) -> tuple[int, int]:
        if self.range is not None:
            first, last = self.range
            return max(1, first), min(self.frame_count, last)
        return 1, self.frame_count

    def play(self) -> None:
        if self.playing:
            return
        first, last = self.bounds()
        if not first <= self.current <= last or (self.current == last and not self.loop):
            self.current = first
            self.frame.emit(first)
        self._start_time = time.perf_counter()
        self._start_frame = self.current
        self.frames_emitted = 0
        self._timer.start(max(1, int(500 / max(1.0, self.fps))))  # tick at twice the frame rate
        self.state_changed.emit(True)

    def stop(self) -> None:
        if self.playing:
            self._timer.stop()
            self.state_changed.emit(False)

    def toggle(self) -> None:
        self.stop() if self.playing else self.play()

    def _tick(self) -> None:
        first, last = self.bounds()
        elapsed = time.perf_counter() - self._start_time
        advanced = int(elapsed * self.fps)
        target = self._start_frame + advanced
        length = last - first + 1
        if target > last:
            if not self.loop:
                self.current = last
                self.frame.emit(last)
                self.stop()
                return
            target = first + (target - first) % length
        if target != self.current:
            self.current = target
            self.frames_emitted += 1
            self.frame.emit(target)
