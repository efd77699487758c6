"""Import: turn a folder, pattern, file list or video into a `Source`, checking headers only.

Import is all-or-nothing and lazy: every file's header is read (size, alpha, bit depth, and a
cheap truncation check for PNG and JPEG) but no pixels are decoded unless hold detection asks
for it. A file that cannot be read, or whose size differs from the first, stops the import with
a MediaError naming it; nothing is returned half-made, and the project is never touched here.

Paths in the returned `Source`: `path` is the folder that holds the frames (or the video file),
absolute; `files` are relative to `path`. The project may rewrite `path` relative to the project
folder; `read_frame` resolves `project_folder / path / file` (an absolute `path` stays as it is).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import MediaError
from ..core.progress import CancelToken, ProgressCallback, StageReporter
from ..project.document import Source, SourceKind
from ..project.relink import fingerprint_source
from . import holds as _holds
from .holds import DEFAULT_MAX_CHANGED_FRACTION, DEFAULT_TOLERANCE
from .imageio import MAX_PIXELS, ImageInfo, probe_image, read_image, to_bit_depth, to_channels
from .sequence import SequenceListing, list_sequence
from .video import is_video_file, iter_video_frames, probe_video, read_video_frame


@dataclass
class ImportResult:
    source: Source
    groups: list[tuple[int, int]] | None  # [(first source frame, length)] when holds were detected
    warnings: list[str] = field(default_factory=list)


def new_source_id() -> str:
    return "src-" + uuid.uuid4().hex[:8]


HEADER_THREADS = 4  # header reads wait on the disk (a network share, a cold cache): overlap them


def _check_headers(listing: SequenceListing, max_pixels: int, reporter: StageReporter) -> list[ImageInfo]:
    """Probe every file; the first bad or mismatched file in frame order is the one reported."""
    infos: list[ImageInfo] = []
    first: ImageInfo | None = None
    with ThreadPoolExecutor(HEADER_THREADS, thread_name_prefix="probe") as pool:
        try:
            for path, info in zip(listing.files, pool.map(lambda p: probe_image(p, max_pixels), listing.files)):
                first = _check_one(path, info, first, reporter, infos)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return infos


def _check_one(path: Path, info: ImageInfo, first: ImageInfo | None, reporter: StageReporter,
               infos: list[ImageInfo]) -> ImageInfo:
    """Record one frame's header; refuse a size that differs from the first frame's."""
    if first is not None and (info.width, info.height) != (first.width, first.height):
        raise MediaError(f"{path} is {info.width}x{info.height} but the sequence is "
                         f"{first.width}x{first.height} (from {Path(first.path).name}); "
                         "all frames must have the same size.")
    infos.append(info)
    reporter.step()
    return first or info


def _import_images(listing: SequenceListing, max_pixels: int, progress: ProgressCallback | None,
                   cancel: CancelToken | None) -> tuple[Source, list[str]]:
    reporter = StageReporter(progress, cancel, "check", len(listing.files))
    reporter.start(f"checking {len(listing.files)} files")
    infos = _check_headers(listing, max_pixels, reporter)
    folder = listing.folder.resolve()
    if all(p.parent == listing.folder for p in listing.files):  # a sequence: names only, no resolving
        files = [p.name for p in listing.files]
    else:
        files = [os.path.relpath(p.resolve(), folder).replace(os.sep, "/") for p in listing.files]
    warnings = list(listing.warnings)
    depths = {i.bit_depth for i in infos}
    if len(depths) > 1:
        warnings.append("The frames mix 8- and 16-bit images; all are read as 16-bit.")
    alphas = {i.has_alpha for i in infos}
    if len(alphas) > 1:
        warnings.append("Some frames have transparency and some do not; frames without it are read as opaque.")
    source = Source(
        id=new_source_id(),
        kind=SourceKind.SEQUENCE if listing.numbered else SourceKind.IMAGES,
        path=str(folder),
        files=files,
        width=infos[0].width,
        height=infos[0].height,
        frame_count=len(files),
        has_alpha=any(alphas),
        bit_depth=max(depths),
        gaps=list(listing.gaps),
    )
    for name in [source.path, *files]:
        _check_text(name)
    source.hashes = _fingerprints(source, folder)
    return source, warnings


def _check_text(name: str) -> None:
    """A path must be storable in project.json (UTF-8): names in another system's encoding are not."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = name.encode("utf-8", "backslashreplace").decode()
        raise MediaError(f"{shown} has a name that is not valid text (bytes from another system's encoding); "
                         "rename it first.") from None


def _fingerprints(source: Source, location: Path) -> dict[str, str]:
    try:
        return fingerprint_source(source, location)
    except OSError as exc:
        raise MediaError(f"{location} cannot be read: {exc.strerror or exc}.") from None


def _import_video(path: Path, default_fps: float) -> tuple[Source, list[str]]:
    info = probe_video(path, default_fps)
    warnings = [] if info.fps_from_file else [f"{path} does not state a frame rate; {default_fps:g} fps is used."]
    _check_text(str(path.resolve()))
    source = Source(id=new_source_id(), kind=SourceKind.VIDEO, path=str(path.resolve()), files=[],
                    width=info.width, height=info.height, fps=info.fps, frame_count=info.frame_count)
    source.hashes = _fingerprints(source, path.resolve())
    return source, warnings


def iter_source_frames(source: Source, project_folder: str | os.PathLike | None = None) -> Iterator[np.ndarray]:
    """Every frame of a source in order (sequential reading: fast for videos)."""
    if source.kind == SourceKind.VIDEO:
        count = 0
        for frame in iter_video_frames(source_path(source, project_folder)):
            if count >= source.frame_count:
                return
            count += 1
            yield frame
        if count < source.frame_count:
            raise MediaError(f"{source.path} ends after {count} frames instead of {source.frame_count}.")
        return
    for index in range(source.frame_count):
        yield read_frame(source, index, project_folder)


def import_source(path_or_paths: str | os.PathLike | list, detect_holds: bool = False,
                  tolerance: float = DEFAULT_TOLERANCE, progress: ProgressCallback | None = None,
                  cancel: CancelToken | None = None, max_pixels: int = MAX_PIXELS,
                  default_fps: float = 24.0,
                  max_changed_fraction: float = DEFAULT_MAX_CHANGED_FRACTION) -> ImportResult:
    """Import an image sequence, loose images or a video; see the module docstring."""
    if isinstance(path_or_paths, (list, tuple)) and len(path_or_paths) == 1:
        path_or_paths = path_or_paths[0]  # one dropped file: a video, or a file of a series
    single = None if isinstance(path_or_paths, (list, tuple)) else Path(path_or_paths)
    if single is not None and single.is_file() and is_video_file(single):
        source, warnings = _import_video(single, default_fps)
    else:
        listing = list_sequence(path_or_paths)
        source, warnings = _import_images(listing, max_pixels, progress, cancel)
        source.fps = default_fps
    groups = None
    if detect_holds:
        reporter = StageReporter(progress, cancel, "holds", source.frame_count)
        reporter.start("looking for held drawings")

        def frames() -> Iterator[np.ndarray]:
            for frame in iter_source_frames(source):
                yield frame
                reporter.step()

        groups = _holds.detect_holds(frames(), tolerance, max_changed_fraction)
    return ImportResult(source, groups, warnings)


def source_path(source: Source, project_folder: str | os.PathLike | None = None) -> Path:
    base = Path(source.path)
    if not base.is_absolute() and project_folder is not None:
        base = Path(project_folder) / base
    return base


def frame_path(source: Source, index: int, project_folder: str | os.PathLike | None = None) -> Path:
    """The file of an image source's frame (sequences and loose images)."""
    if source.kind == SourceKind.VIDEO:
        raise MediaError(f"{source.path} is a video; its frames have no files.")
    if not 0 <= index < len(source.files):
        raise MediaError(f"Frame {index + 1} is outside the source {source.path} ({len(source.files)} frames).")
    return source_path(source, project_folder) / source.files[index]


def conform(array: np.ndarray, has_alpha: bool, bit_depth: int) -> np.ndarray:
    """Give a frame the channels and bit depth of its source or shot."""
    return to_channels(to_bit_depth(array, bit_depth), has_alpha)


def read_frame(source: Source, index: int, project_folder: str | os.PathLike | None = None,
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode one source frame, conformed to the source's alpha and bit depth."""
    if source.kind == SourceKind.BLANK:  # an empty cell: paper white, or clear where there is alpha
        blank = np.full((max(1, source.height), max(1, source.width), 4 if source.has_alpha else 3),
                        0 if source.has_alpha else 255, np.uint8)
        return conform(blank, source.has_alpha, source.bit_depth)
    if source.kind == SourceKind.VIDEO:
        if not 0 <= index < source.frame_count:
            raise MediaError(f"Frame {index + 1} is outside the video {source.path} ({source.frame_count} frames).")
        array = read_video_frame(source_path(source, project_folder), index)
    else:
        path = frame_path(source, index, project_folder)
        array = read_image(path, max_pixels)
        if source.width and (array.shape[1], array.shape[0]) != (source.width, source.height):
            raise MediaError(f"{path} is now {array.shape[1]}x{array.shape[0]}; it was {source.width}x"
                             f"{source.height} when imported. Was the file replaced?")
    return conform(array, source.has_alpha, source.bit_depth)
