"""The exposure sheet and the viewer on a shot built in memory."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage
from pytestqt.exceptions import TimeoutError
from qt_helpers import PATIENCE_MS, make_shot

from tooncrafter_studio.project.document import ReviewStatus, Take, TakeFrame
from tooncrafter_studio.project.resolve import ImageRef, key_spans, resolve_timeline
from tooncrafter_studio.qt.widgets.frames import FrameProvider
from tooncrafter_studio.qt.widgets.thumbnails import DisplayImage, ImageLoader
from tooncrafter_studio.qt.widgets.timeline import COLORS, RULER_H, TimelineView, runs_of
from tooncrafter_studio.qt.widgets.viewer import Playback, ViewerWidget, onion_opacities, tinted


class BlockingProvider:
    """Decoding waits until the test releases it: painting must never wait with it."""

    def __init__(self, shot, folder):
        self.inner = FrameProvider(lambda: shot, lambda: folder)
        self.release = threading.Event()
        self.loading_threads: set[int] = set()

    def load(self, ref):
        self.loading_threads.add(threading.get_ident())
        self.release.wait(10)
        return self.inner.load(ref)


@pytest.fixture
def shot_with_take(tmp_path):
    from tooncrafter_studio.media import write_png

    shot = make_shot(tmp_path, drawings=9, lengths=[2] * 9, keys=(0, 4, 8))
    (tmp_path / "takes" / "t1").mkdir(parents=True)
    frames = []
    for i, (offset, status) in enumerate([(2, ReviewStatus.ACCEPTED), (4, ReviewStatus.REJECTED),
                                          (6, ReviewStatus.PENDING)]):
        write_png(tmp_path / "takes" / "t1" / f"{i + 1:04d}.png", np.full((64, 96, 3), 200, np.uint8))
        frames.append(TakeFrame(f"takes/t1/{i + 1:04d}.png", offset, (i + 1) / 4, status))
    shot.takes["t1"] = Take("t1", "d0", "d4", frames, {"engine": "flow"}, {}, 1, "2026-01-01T00:00:00")
    from tooncrafter_studio.project.document import Segment
    shot.segments[("d0", "d4")] = Segment("d0", "d4", take_ids=["t1"], active_take="t1")
    return shot


def make_timeline(qtbot, shot, folder, provider=None):
    loader = ImageLoader(provider or FrameProvider(lambda: shot, lambda: folder), max_side=64)
    view = TimelineView(loader)
    view.resize(900, 140)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    view.set_frames(resolve_timeline(shot), key_spans(shot))
    return view, loader


def finish(view, loader):
    view.hide()  # no more paints, so no more thumbnail requests
    loader.shutdown()


def color_at(view, frame, y=None):
    image = view.viewport().grab().toImage()
    x = int(view.frame_x(frame) + view.frame_w / 2)
    return QColor(image.pixel(x, y if y is not None else view.viewport().height() - 30))


def test_runs_hold_drawings_and_split_on_review_marks(shot_with_take):
    runs = runs_of(resolve_timeline(shot_with_take))
    # the rejected drawing (frame 5, held on 2s) is its own crossed-out cell, labelled as itself
    assert [(r.first, r.length) for r in runs][:5] == [(1, 2), (3, 2), (5, 2), (7, 2), (9, 2)]
    assert runs[1].frame.status == ReviewStatus.ACCEPTED
    assert runs[2].frame.status == ReviewStatus.REJECTED and runs[2].frame.note.endswith(f"holds {runs[1].frame.label}")
    assert runs[2].frame.label != runs[1].frame.label and runs[2].frame.hidden is not None
    assert runs[2].frame.image == runs[1].frame.image


def test_cells_are_coloured_by_kind_and_review_status(qtbot, shot_with_take, tmp_path):
    view, loader = make_timeline(qtbot, shot_with_take, tmp_path)
    view.set_zoom(60)
    view.horizontalScrollBar().setValue(0)
    view.set_selection(18, 18)  # keep the selection tint off the cells measured
    expected = {1: COLORS["key"], 3: COLORS[ReviewStatus.ACCEPTED], 7: COLORS[ReviewStatus.PENDING],
                11: COLORS["drawing"]}

    def painted(frame, color):
        got = color_at(view, frame)
        return abs(got.red() - color.red()) < 12 and abs(got.green() - color.green()) < 12

    try:
        qtbot.waitUntil(lambda: all(painted(f, c) for f, c in expected.items()), timeout=PATIENCE_MS)
    except TimeoutError:
        pass  # the assertion below names the frame that is wrong
    for frame, color in expected.items():
        got = color_at(view, frame)
        assert abs(got.red() - color.red()) < 12 and abs(got.green() - color.green()) < 12, (frame, got.name())
    finish(view, loader)


def test_painting_never_waits_for_thumbnails(qtbot, shot_with_take, tmp_path):
    provider = BlockingProvider(shot_with_take, tmp_path)
    view, loader = make_timeline(qtbot, shot_with_take, tmp_path, provider)
    view.viewport().grab()  # paints now
    # decoding is blocked, painting is not: no decode ever ran on the painting (UI) thread
    assert loader.pending_count() > 0
    assert threading.get_ident() not in provider.loading_threads
    count = view.paint_count
    provider.release.set()
    qtbot.waitUntil(lambda: loader.pending_count() == 0, timeout=PATIENCE_MS)
    assert loader.peek(ImageRef("source", "s1", 0)) is not None
    view.viewport().grab()
    assert view.paint_count > count
    finish(view, loader)


def test_scrub_select_range_and_key_pair_with_the_mouse(qtbot, shot_with_take, tmp_path):
    view, loader = make_timeline(qtbot, shot_with_take, tmp_path)
    view.set_zoom(40)
    frames_seen = []
    view.current_frame_changed.connect(frames_seen.append)

    def x_of(frame):
        return int(view.frame_x(frame) + view.frame_w / 2)

    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x_of(2), RULER_H // 2))
    qtbot.mouseMove(view.viewport(), QPoint(x_of(6), RULER_H // 2))
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x_of(6), RULER_H // 2))
    assert frames_seen[0] == 2 and view.current_frame == 6  # scrubbed
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x_of(3), 60))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     QPoint(x_of(9), 60))
    assert view.selection == (3, 9)
    segment_y = view.viewport().height() - 5
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x_of(12), segment_y))
    assert view.selection == (9, 17)  # the key pair between the keys at 9 and 17
    assert [s.key for s in view.selected_spans()] == [("d4", "d8")]
    finish(view, loader)


def test_zoom_keeps_the_playhead_in_place(qtbot, shot_with_take, tmp_path):
    view, loader = make_timeline(qtbot, shot_with_take, tmp_path)
    view.set_zoom(80)  # wider than the view: there is room to scroll
    view.set_current_frame(10)
    x_before = view.frame_x(10)
    view.zoom_in()
    assert view.frame_w == 100
    assert abs(view.frame_x(10) - x_before) <= view.frame_w
    finish(view, loader)


def test_viewer_fit_actual_size_and_pan(qtbot):
    viewer = ViewerWidget()
    viewer.resize(400, 300)
    qtbot.addWidget(viewer)
    viewer.show_frame(DisplayImage.from_array(np.zeros((540, 960, 3), np.uint8)))
    assert viewer.effective_scale() == pytest.approx(min(384 / 960, 284 / 540))
    viewer.zoom_actual()
    assert viewer.effective_scale() == 1.0 and viewer.image_rect().width() == 960
    qtbot.mousePress(viewer, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(viewer, QPoint(130, 90))
    qtbot.mouseRelease(viewer, Qt.MouseButton.LeftButton, pos=QPoint(130, 90))
    assert (viewer.pan.x(), viewer.pan.y()) == (30, -10)
    viewer.zoom_fit()
    assert viewer.fit and viewer.pan.x() == 0


def test_onion_skin_tint_and_falloff():
    drawing = np.full((10, 10, 3), 255, np.uint8)
    drawing[4:6] = 0  # a black line on white paper
    red = tinted(DisplayImage.from_array(drawing), QColor(220, 40, 40)).array
    assert tuple(red[5, 5]) == (220, 40, 40) and tuple(red[0, 0]) == (255, 255, 255)
    assert onion_opacities(3, 0.5) == pytest.approx([0.5, 0.3, 0.18])


def test_display_image_owns_a_copy_with_padded_rows():
    array = np.random.default_rng(1).integers(0, 255, (7, 5, 3), np.uint8)
    image = DisplayImage.from_array(array)
    assert image.image.format() == QImage.Format.Format_RGB32  # Qt's fast format for drawing
    assert np.array_equal(image.array, array)
    assert QColor(image.image.pixel(4, 6)).getRgb() == (*(int(v) for v in array[6, 4]), 255)
    rgba = np.random.default_rng(2).integers(0, 255, (3, 5, 4), np.uint8)  # 20-byte rows
    image = DisplayImage.from_array(rgba)
    assert np.array_equal(image.array, rgba)
    assert QColor.fromRgba(image.image.pixel(1, 2)).getRgb() == tuple(int(v) for v in rgba[2, 1])
    del image
    kept = DisplayImage.from_array(array).array[2:]  # a view keeps the pixels alive on its own
    assert np.array_equal(kept, array[2:])


def test_playback_keeps_real_time_and_loops_in_a_range(qtbot):
    playback = Playback()
    playback.fps = 50
    playback.frame_count = 100
    playback.range = (10, 14)
    seen = []
    playback.frame.connect(seen.append)
    playback.current = 10
    playback.play()
    qtbot.waitUntil(lambda: 14 in seen and seen.count(10) >= 2, timeout=PATIENCE_MS)
    playback.stop()
    assert set(seen) <= set(range(10, 15))
    assert 14 in seen and seen.count(10) >= 2  # looped within the range
    playback.loop = False
    playback.range = None
    playback.current = 98
    seen.clear()
    playback.play()
    qtbot.waitUntil(lambda: not playback.playing, timeout=PATIENCE_MS)
    assert seen[-1] == 100
