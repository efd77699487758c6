"""Video files through OpenCV: probing (size, fps, frame count) and reading frames by index."""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.errors import MediaError
from ..core.fsio import check_regular_file
from ..core.limits import MAX_PIXELS, MAX_SHOT_FRAMES, MAX_SIDE

# FFmpeg's own messages ("moov atom not found") would reach the terminal beside ours, which say
# the same in words an animator can use; quiet unless the environment asks otherwise. Read by
# OpenCV when it first opens a video, so setting it here (before any capture) is enough.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".gif")


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    fps_from_file: bool  # False when the file had none and a default was used


def is_video_file(path: str | os.PathLike) -> bool:
    return os.path.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


def _open(path: str | os.PathLike) -> cv2.VideoCapture:
    if check_regular_file(path, MediaError, "video") == 0:
        raise MediaError(f"{path} is empty (zero bytes).")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise MediaError(f"{path} cannot be opened as a video (unknown or damaged format).")
    # The size the container claims, checked before the first frame is decoded (a 66-byte GIF
    # may claim 16000x16000: a gigabyte per frame).
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        capture.release()
        raise MediaError(f"{path} claims frames of {width}x{height}, above the limit of {MAX_PIXELS / 1e6:g} Mpx "
                         f"({MAX_SIDE} on a side); it may be damaged or a decompression bomb.")
    return capture


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    return np.ascontiguousarray(frame[:, :, 2::-1])


def probe_video(path: str | os.PathLike, default_fps: float = 24.0) -> VideoInfo:
    capture = _open(path)
    try:
        ok, first = capture.read()
        if not ok or first is None:
            raise MediaError(f"{path} contains no frame that can be decoded.")
        height, width = first.shape[:2]
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        fps_from_file = math.isfinite(fps) and 0.5 < fps < 1000
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count > MAX_SHOT_FRAMES:
            raise MediaError(f"{path} has {count:,} frames, more than the limit of {MAX_SHOT_FRAMES:,} for a shot; "
                             "cut it into shots first.")
        if count > 1:  # containers may overstate the count: the last frame must really decode
            capture.set(cv2.CAP_PROP_POS_FRAMES, count - 1)
            ok, _ = capture.read()
            if not ok:
                count = 0
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                capture.read()
        if count <= 0:  # unknown or wrong: count by reading (grab skips colour conversion)
            count = 1
            while capture.grab():
                count += 1
                if count > MAX_SHOT_FRAMES:
                    raise MediaError(f"{path} has more than {MAX_SHOT_FRAMES:,} frames, the limit for a shot; "
                                     "cut it into shots first.")
        return VideoInfo(str(path), width, height, fps if fps_from_file else default_fps, count, fps_from_file)
    finally:
        capture.release()


def iter_video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Every frame in order, as RGB uint8."""
    capture = _open(path)
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                return
            yield _to_rgb(frame)
    finally:
        capture.release()


class _Reader:
    """One open capture; reading the next frame is cheap, any other index seeks."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.capture = _open(path)
        self.next_index = 0
        self.lock = threading.Lock()

    def read(self, index: int) -> np.ndarray:
        with self.lock:
            if index != self.next_index:
                self.capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = self.capture.read()
            if not ok or frame is None:
                self.next_index = -1
                raise MediaError(f"Frame {index + 1} of {self.path} cannot be decoded.")
            self.next_index = index + 1
            return _to_rgb(frame)

    def close(self) -> None:
        self.capture.release()


_readers: OrderedDict[str, _Reader] = OrderedDict()
_readers_lock = threading.Lock()
_MAX_READERS = 4


def read_video_frame(path: str | os.PathLike, index: int) -> np.ndarray:
    key = os.path.abspath(path)
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None:
            reader = _Reader(key)
            _readers[key] = reader
            while len(_readers) > _MAX_READERS:
                _readers.popitem(last=False)[1].close()
        _readers.move_to_end(key)
    return reader.read(index)


def close_video_readers() -> None:
    with _readers_lock:
        while _readers:
            _readers.popitem()[1].close()
