"""PNG-sequence export of a shot, with timing sheets and a provenance sidecar.

What is written comes from `resolve_timeline`, the same answer the viewer shows: keys, drawings
and accepted in-betweens (pending ones when asked; rejected ones never - the previous picture
is held in their place and the sheet says so). Either one file per timeline frame (holds
expanded) or one file per drawing plus the timing sheet that times them.

Safety:
- Nothing existing is overwritten unless `overwrite=True`, except files that our own previous
  export into the same folder wrote (listed in its sidecar, same size); those are replaced, and
  ones the new export no longer needs are removed so that no stale frame joins the sequence.
- Files are written into a hidden temporary folder inside the output folder and moved into
  place (an atomic rename each) only when all are written. A cancel, a full disk or any error
  removes the temporary folder and whatever this run already moved, so an export either
  completes or leaves the folder as it was (a temporary folder left by a killed process is
  removed by a later export after 6 hours). The project folder is only ever read.
- Source PNGs already in the output's layout (size, channels, bit depth) are copied byte for
  byte (`copy_unchanged`); everything else is decoded, conformed to the shot and re-encoded.

Encoding runs on a small thread pool: decoding and PNG encoding release the GIL in OpenCV.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..core.errors import Cancelled, ExportError, StudioError
from ..core.fsio import RESOURCE_ERRNOS, fsync_dir, read_regular_file
from ..core.limits import MAX_PROJECT_FILE_BYTES
from ..core.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from ..media.imageio import encode_png, plain_png_layout, probe_image, read_image
from ..media.importer import conform, frame_path, read_frame
from ..project.document import Shot, SourceKind
from ..project.moved_copy import original_location_notes
from ..project.relink import missing_drawings
from ..project.resolve import ImageRef, ResolvedFrame, resolve_timeline
from .naming import DEFAULT_PRESET, Naming, resolve_naming
from .overwrite import file_id
from .timing import SheetRow, csv_text, xdts_text

log = logging.getLogger(__name__)

TIMING_SHEETS = ("csv", "xdts", "both", "none")
SIDECAR_SUFFIX = ".export.json"
_TEMP_PREFIX = ".tooncrafter-export-"


@dataclass
class ExportOptions:
    out_dir: str | os.PathLike
    preset: str = DEFAULT_PRESET
    name: str | None = None  # default: the shot's name
    separator: str | None = None  # ".", "_", "none"; None: the preset's
    padding: int | None = None
    start_number: int | None = None
    include_pending: bool = False
    drawings_only: bool = False
    timing_sheet: str = "both"  # csv, xdts, both or none
    sidecar: bool = True
    overwrite: bool = False
    workers: int = 2
    compression: int = 1  # zlib level 0-9; 1 is fast and still small for flat colours
    copy_unchanged: bool = True  # source PNGs already in the output's layout are copied byte for byte
    fsync: bool = True  # make each file durable before it is moved into place

    def naming(self, shot: Shot) -> Naming:
        return resolve_naming(self.name or shot.name or "shot", self.preset, self.separator, self.padding,
                              self.start_number)


@dataclass
class ExportReport:
    out_dir: Path
    files: list[str]  # image files written, in order
    sheets: list[str]  # timing sheets and sidecar written
    frame_count: int  # timeline frames covered
    drawing_count: int  # distinct pictures encoded
    held_in_place: list[int] = field(default_factory=list)  # first frame of each in-between held over
    removed_stale: list[str] = field(default_factory=list)  # our older files no longer in the sequence
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def first(self) -> str:
        return self.files[0] if self.files else ""

    @property
    def last(self) -> str:
        return self.files[-1] if self.files else ""


@dataclass(frozen=True)
class _Job:
    image: ImageRef
    names: tuple[str, ...]  # every output file showing this picture


@dataclass
class _Plan:
    naming: Naming
    frames: list[ResolvedFrame]
    jobs: list[_Job]
    rows: list[SheetRow]
    files: list[str]


def _plan(shot: Shot, options: ExportOptions) -> _Plan:
    naming = options.naming(shot)
    frames = resolve_timeline(shot, include_pending=options.include_pending)
    if not frames:
        raise ExportError("The shot has no frames to export.")
    names_by_image: dict[ImageRef, list[str]] = {}
    drawing_of_frame: list[str] = []
    file_of_frame: list[str] = []
    if options.drawings_only:  # one file per distinct picture, numbered in order of first appearance
        position: dict[ImageRef, int] = {}
        for resolved in frames:
            if resolved.image not in position:
                position[resolved.image] = len(position)
                names_by_image[resolved.image] = [naming.file_name(position[resolved.image])]
            file_of_frame.append(names_by_image[resolved.image][0])
            drawing_of_frame.append(str(naming.start_number + position[resolved.image]))
        files = [names[0] for names in names_by_image.values()]
    else:  # one file per timeline frame; the sheet names the file where each exposure starts
        run_start_number = naming.start_number
        previous: ImageRef | None = None
        for index, resolved in enumerate(frames):
            file_name = naming.file_name(index)
            names_by_image.setdefault(resolved.image, []).append(file_name)
            if resolved.image != previous:
                run_start_number = naming.start_number + index
                previous = resolved.image
            file_of_frame.append(file_name)
            drawing_of_frame.append(str(run_start_number))
        files = file_of_frame[:]
    # one numbering per sheet: frames count from the preset's first number, as the files do (Nuke: 1001)
    rows = [SheetRow(naming.start_number + i, drawing_of_frame[i], file_of_frame[i], r.label, r.kind,
                     r.image.kind, r.image.id,
                     r.image.index, r.status.value if r.status is not None else "", r.note)
            for i, r in enumerate(frames)]
    jobs = [_Job(image, tuple(names)) for image, names in names_by_image.items()]
    return _Plan(naming, frames, jobs, rows, files)


def preview_names(options: ExportOptions, shot: Shot) -> tuple[str, str]:
    """(first, last) file names the export would write, for the dialog's naming preview."""
    naming = options.naming(shot)
    if options.drawings_only:
        count = len({f.image for f in resolve_timeline(shot, include_pending=options.include_pending)})
    else:
        count = shot.frame_count
    if count == 0:
        return ("", "")
    return naming.file_name(0), naming.file_name(count - 1)


def _sheet_names(naming: Naming, options: ExportOptions) -> list[str]:
    names = []
    if options.timing_sheet in ("csv", "both"):
        names.append(f"{naming.name}.csv")
    if options.timing_sheet in ("xdts", "both"):
        names.append(f"{naming.name}.xdts")
    if options.sidecar:
        names.append(f"{naming.name}{SIDECAR_SUFFIX}")
    return names


def _previous_export_files(out_dir: Path, naming: Naming) -> dict[str, int]:
    """Files (name -> size) that our previous export into this folder wrote, from its sidecar."""
    sidecar = out_dir / f"{naming.name}{SIDECAR_SUFFIX}"
    if not sidecar.exists():
        return {}
    try:  # a sidecar that is a pipe, huge or absurdly nested is not ours: ignore it
        data = json.loads(read_regular_file(sidecar, MAX_PROJECT_FILE_BYTES, ExportError, "sidecar"))
        written = {entry["name"]: int(entry["size"]) for entry in data["written"]}
        written[sidecar.name] = sidecar.stat().st_size
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, ExportError):
        return {}
    # Only plain names of this sequence and its sheets: an edited sidecar must never make us
    # replace or delete anything else (no paths, no other files).
    own_sheets = {f"{naming.name}.csv", f"{naming.name}.xdts", sidecar.name}
    return {name: size for name, size in written.items()
            if isinstance(name, str) and name == os.path.basename(name) and "\\" not in name
            and (naming.matches(name) or name in own_sheets)}


def _ours(out_dir: Path, name: str, previous: dict[str, int]) -> bool:
    try:
        return name in previous and (out_dir / name).stat().st_size == previous[name]
    except OSError:
        return False


def project_files(shot: Shot, project_folder: Path) -> set[tuple[int, int]]:
    """Identities (device, inode) of every file the project is made of: source drawings and videos,
    take frames, project.json and its recovery copy. An export never replaces or removes one."""
    paths: list[Path] = [project_folder / "project.json", project_folder / ".autosave" / "project.json"]
    for source in shot.sources.values():
        base = Path(source.path) if Path(source.path).is_absolute() else project_folder / source.path
        paths.extend([base] if source.kind == SourceKind.VIDEO else [base / name for name in source.files])
    for take in shot.takes.values():
        paths.extend(project_folder / frame.file for frame in take.frames)
    return {ident for ident in map(file_id, paths) if ident is not None}


def _check_targets(out_dir: Path, targets: list[str], previous: dict[str, int], overwrite: bool,
                   protected: set[tuple[int, int]] | None = None) -> None:
    existing = [name for name in targets if (out_dir / name).exists()]
    for name in existing:
        if (out_dir / name).is_dir():
            raise ExportError(f"{out_dir / name} is a folder; the export cannot write a file there.")
    inputs = [name for name in existing if protected and file_id(out_dir / name) in protected]
    if inputs:
        raise ExportError(f"{out_dir / inputs[0]} is a file of this project (a source drawing or a generated frame); "
                          "an export never replaces one, whatever --overwrite says. Choose another folder or name.")
    blocking = [name for name in existing if not _ours(out_dir, name, previous)]
    if blocking and not overwrite:
        shown = ", ".join(blocking[:5]) + (f" and {len(blocking) - 5} more" if len(blocking) > 5 else "")
        raise ExportError(f"{len(blocking)} file{'s' if len(blocking) != 1 else ''} in {out_dir} would be "
                          f"overwritten ({shown}); choose another folder or allow overwriting.")


def _prepare_out_dir(out_dir: Path) -> None:
    for folder in (out_dir, *out_dir.parents):  # mkdir would only say "File exists" / "Not a directory"
        if folder.exists():
            if not folder.is_dir():
                where = "" if folder == out_dir else f": the output folder {out_dir} cannot be made inside it"
                raise ExportError(f"{folder} is a file, not a folder{where}.")
            break
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(out_dir, exc) from exc
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir} is not a folder.")


def _os_error_message(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"The disk is full: could not write {path}. Nothing was exported; free some space and try again."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"No permission to write {path}. Choose a folder you can write to."
    return f"Could not write {path}: {exc.strerror or exc}."


def _os_error(path: Path, exc: OSError) -> ExportError:
    error = ExportError(_os_error_message(path, exc))
    error.resource = exc.errno in RESOURCE_ERRNOS  # a full or read-only disk: exit code 3, not bad input
    return error


def _write_file(path: Path, data: bytes, fsync: bool) -> None:
    try:
        with open(path, "xb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as exc:
        raise _os_error(path, exc) from exc


class _PictureLoader:
    """Reads a resolved picture as an array conformed to the shot (size, channels, bit depth)."""

    def __init__(self, shot: Shot, project_folder: Path) -> None:
        self.shot = shot
        self.project_folder = project_folder
        self.size: tuple[int, int] | None = (shot.width, shot.height) if shot.width and shot.height else None
        self.warnings: list[str] = []
        self._lock = threading.Lock()

    def _warn_once(self, text: str) -> None:
        with self._lock:
            if text not in self.warnings:
                self.warnings.append(text)

    def copyable_file(self, image: ImageRef) -> Path | None:
        """The source file itself when it is a PNG exactly as the export would write it.

        Copying is lossless and skips a decode and an encode; the file keeps its own chunks
        (colour profile, gamma), which is what the source said about its colours.
        """
        if image.kind != "source" or self.size is None:
            return None
        source = self.shot.sources.get(image.id)
        if source is None or source.kind == SourceKind.VIDEO:
            return None
        try:
            path = frame_path(source, image.index, self.project_folder)
            if probe_image(path).format != "PNG":  # also checks the file is complete
                return None
        except StudioError:
            return None  # load() reports it properly
        layout = plain_png_layout(path)
        wanted = (*self.size, 16 if self.shot.bit_depth == 16 else 8, bool(self.shot.has_alpha))
        return path if layout == wanted else None

    def load(self, image: ImageRef) -> np.ndarray:
        shot = self.shot
        if image.kind == "source":
            source = shot.sources.get(image.id)
            if source is None:
                raise ExportError(f"The shot refers to a missing source {image.id}.")
            array = read_frame(source, image.index, self.project_folder)
        elif image.kind == "take":
            take = shot.takes.get(image.id)
            if take is None or not 0 <= image.index < len(take.frames):
                raise ExportError(f"The shot refers to a missing take frame ({image.id}, {image.index + 1}).")
            path = Path(take.frames[image.index].file)
            array = read_image(path if path.is_absolute() else self.project_folder / path)
            if shot.has_alpha and array.shape[2] == 3:
                self._warn_once("In-betweens have no transparency; they are written fully opaque.")
        else:
            raise ExportError(f"Unknown picture kind {image.kind!r}.")
        with self._lock:
            if self.size is None:
                self.size = (array.shape[1], array.shape[0])
        width, height = self.size
        if (array.shape[1], array.shape[0]) != (width, height):
            self._warn_once(f"Some pictures were {array.shape[1]}x{array.shape[0]} and were resized to the "
                            f"shot's {width}x{height}.")
            array = cv2.resize(array, (width, height), interpolation=cv2.INTER_CUBIC)
        return conform(array, shot.has_alpha, 16 if shot.bit_depth == 16 else 8)


def _provenance(shot: Shot, options: ExportOptions, plan: _Plan, written: list[tuple[str, int]]) -> dict:
    used_takes = {f.image.id for f in plan.frames if f.image.kind == "take"} | {
        f.take_id for f in plan.frames if f.take_id}
    takes = []
    for take_id in sorted(used_takes):
        take = shot.takes.get(take_id)
        if take is None:
            continue
        takes.append({
            "id": take.id, "label": take.label, "start_key": take.start_key, "end_key": take.end_key,
            "engine": take.engine, "seed": take.seed, "params": take.params, "created": take.created,
            "frames": [{"offset": tf.offset, "time": tf.time, "status": tf.status.value, "file": tf.file}
                       for tf in take.frames],
        })
    keys = [{"frame": plan.naming.start_number + f.frame - 1, "label": f.label, "source": f.image.id,
             "source_frame": f.image.index}
            for f in plan.frames if f.kind == "key" and f.new_drawing]
    return {
        "tool": "ToonCrafter Studio",
        "version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "shot": {"name": shot.name, "fps": shot.fps, "width": shot.width, "height": shot.height,
                 "frames": len(plan.frames), "has_alpha": shot.has_alpha, "bit_depth": shot.bit_depth},
        "naming": asdict(plan.naming) | {"pattern": plan.naming.pattern},
        "options": {"preset": options.preset, "include_pending": options.include_pending,
                    "drawings_only": options.drawings_only, "timing_sheet": options.timing_sheet},
        "keys": keys,
        "takes": takes,
        "frames": [asdict(row) for row in plan.rows],
        "written": [{"name": name, "size": size} for name, size in written],
    }


LOCATE_IN_THE_APP = "Locate them first: File ▸ Locate Missing Drawings…"


class MissingDrawingsError(ExportError):
    """Drawings of the shot are not where the project says: the export would stop at the first one.
    `summary` says which; the message adds how to find them in the app (the CLI names `relink`)."""

    def __init__(self, summary: str, count: int) -> None:
        super().__init__(f"{summary} {LOCATE_IN_THE_APP}")
        self.summary = summary
        self.count = count


def check_drawings_present(shot: Shot, project_folder: str | os.PathLike) -> None:
    """MissingDrawingsError when any drawing's file is missing (before anything is written)."""
    missing = missing_drawings(shot, Path(project_folder))
    if not missing:
        return
    names = []
    for drawing_id in missing[:3]:
        drawing = shot.drawings[drawing_id]
        source = shot.sources[drawing.source_id]
        names.append(source.path if source.kind == SourceKind.VIDEO or not source.files
                     else f"{source.path}/{source.files[drawing.source_frame]}")
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    count = len(missing)
    raise MissingDrawingsError(f"{count} drawing{'s are' if count != 1 else ' is'} missing ({', '.join(names)}{more}): "
                               "the files are not where the project says, so nothing was exported.", count)


def export_sequence(project_folder: str | os.PathLike, shot: Shot, options: ExportOptions,
                    progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                    clock: Callable[[], float] | None = None) -> ExportReport:
    """Export the shot as a PNG sequence (see the module docstring). Raises ExportError or Cancelled.

    A failed or cancelled export also removes the output folders it created (when they are empty)."""
    out_dir = Path(options.out_dir) if str(options.out_dir).strip() else None
    made = [] if out_dir is None else [p for p in [out_dir, *out_dir.parents] if not os.path.lexists(p)]
    try:
        return _export_sequence(project_folder, shot, options, progress, cancel, clock)
    except BaseException:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _export_sequence(project_folder: str | os.PathLike, shot: Shot, options: ExportOptions,
                     progress: ProgressCallback | None, cancel: CancelToken | None,
                     clock: Callable[[], float] | None) -> ExportReport:
    clock = clock or time.perf_counter
    started = clock()
    progress = progress or no_progress
    cancel = cancel or CancelToken()
    if options.timing_sheet not in TIMING_SHEETS:
        raise ExportError(f"Unknown timing sheet {options.timing_sheet!r}: use csv, xdts, both or none.")
    workers = max(1, int(options.workers))
    project_folder = Path(project_folder)
    if not str(options.out_dir).strip():
        raise ExportError("Choose a folder to export into.")
    check_drawings_present(shot, project_folder)
    out_dir = Path(options.out_dir)
    plan = _plan(shot, options)
    sheet_names = _sheet_names(plan.naming, options)
    targets = plan.files + sheet_names
    _prepare_out_dir(out_dir)
    _remove_abandoned_temp_folders(out_dir)
    previous = _previous_export_files(out_dir, plan.naming)
    protected = project_files(shot, project_folder) if any((out_dir / n).exists() for n in targets + list(previous)) \
        else set()
    _check_targets(out_dir, targets, previous, options.overwrite, protected)
    stale = sorted(name for name in previous if name not in set(targets) and _ours(out_dir, name, previous)
                   and file_id(out_dir / name) not in protected)

    report = ExportReport(out_dir, plan.files, sheet_names, len(plan.frames), len(plan.jobs))
    report.held_in_place = [f.frame for i, f in enumerate(plan.frames)  # the first frame of each one held
                            if f.hidden is not None and (i == 0 or plan.frames[i - 1].hidden != f.hidden)]
    report.warnings.extend(original_location_notes(shot))  # a moved copy exporting the original's drawings
    if options.drawings_only and options.timing_sheet == "none":
        report.warnings.append("Only drawings were written and no timing sheet: the timing is in the sidecar only.")
    foreign = [n for n in _listdir(out_dir) if plan.naming.matches(n) and n not in set(targets) and n not in stale]
    if foreign:
        report.warnings.append(f"{out_dir} also holds {len(foreign)} other file(s) matching {plan.naming.pattern} "
                               f"(e.g. {foreign[0]}); tools will read them as part of the sequence.")

    try:
        temp = Path(out_dir) / f"{_TEMP_PREFIX}{uuid.uuid4().hex[:8]}"
        temp.mkdir()
    except OSError as exc:
        raise _os_error(out_dir, exc) from exc
    try:
        loader = _PictureLoader(shot, project_folder)
        sizes = _encode_all(plan, loader, temp, options, workers, progress, cancel)
        report.warnings.extend(loader.warnings)
        sheet_texts = []
        if options.timing_sheet in ("csv", "both"):
            sheet_texts.append((f"{plan.naming.name}.csv", csv_text(plan.rows)))
        if options.timing_sheet in ("xdts", "both"):
            notes = shot.sheet.other_tracks if shot.sheet is not None else []  # an imported sheet's dialogue...
            sheet_texts.append((f"{plan.naming.name}.xdts", xdts_text(plan.rows, plan.naming.name,
                                                                      extra_fields=notes)))
        for name, text in sheet_texts:
            data = text.encode("utf-8")
            _write_file(temp / name, data, options.fsync)
            sizes[name] = len(data)
        written = [(name, sizes[name]) for name in plan.files + [n for n, _ in sheet_texts]]
        if options.sidecar:
            name = f"{plan.naming.name}{SIDECAR_SUFFIX}"
            data = json.dumps(_provenance(shot, options, plan, written), indent=2, ensure_ascii=False).encode()
            _write_file(temp / name, data + b"\n", options.fsync)
        progress(ProgressEvent("finish", 0, len(targets), "moving files into place"))
        cancel.raise_if_cancelled()  # the last moment a cancel is honoured: moving takes no time
        _move_into_place(temp, out_dir, targets)
    except BaseException as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _os_error(out_dir, exc) from exc
        raise
    shutil.rmtree(temp, ignore_errors=True)
    for name in stale:
        with contextlib.suppress(OSError):
            (out_dir / name).unlink()
            report.removed_stale.append(name)
    fsync_dir(out_dir)
    report.seconds = clock() - started
    with contextlib.suppress(Cancelled):  # too late to cancel: the export is complete
        progress(ProgressEvent("finish", len(targets), len(targets), "done"))
    return report


def _move_into_place(temp: Path, out_dir: Path, targets: list[str]) -> None:
    """Rename every written file into `out_dir` as one transaction.

    Files being replaced are first renamed aside into the temporary folder; if any rename fails,
    the new files are taken out again and the old ones put back. Sidecar last (it is last in
    `targets`), so a sidecar always describes files that are present.
    """
    backup = temp / ".replaced"
    moved: list[str] = []
    set_aside: list[str] = []
    try:
        for name in targets:
            if os.path.lexists(out_dir / name):
                backup.mkdir(exist_ok=True)
                os.replace(out_dir / name, backup / name)
                set_aside.append(name)
            os.replace(temp / name, out_dir / name)
            moved.append(name)
    except BaseException:
        for name in moved:
            with contextlib.suppress(OSError):
                (out_dir / name).unlink()
        for name in set_aside:
            with contextlib.suppress(OSError):
                os.replace(backup / name, out_dir / name)
        raise


def _remove_abandoned_temp_folders(out_dir: Path, older_than_s: float = 6 * 3600) -> None:
    """Temporary folders left by an export that was killed (power cut, crash), not by a running one."""
    now = time.time()
    for name in _listdir(out_dir):
        path = out_dir / name
        try:
            if name.startswith(_TEMP_PREFIX) and path.is_dir() and now - path.stat().st_mtime > older_than_s:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ExportError(f"Could not read {path}: {exc.strerror or exc}.") from exc


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _encode_all(plan: _Plan, loader: _PictureLoader, temp: Path, options: ExportOptions, workers: int,
                progress: ProgressCallback, cancel: CancelToken) -> dict[str, int]:
    """Decode, conform, encode and write every picture on `workers` threads; file name -> size."""
    stop = threading.Event()
    sizes: dict[str, int] = {}

    def run(job: _Job) -> dict[str, int]:
        if stop.is_set():
            return {}
        try:
            copyable = loader.copyable_file(job.image) if options.copy_unchanged else None
            if copyable is not None:
                data = _read_bytes(copyable)
            else:
                data = encode_png(loader.load(job.image), options.compression)
        except StudioError as exc:
            if isinstance(exc, ExportError):
                raise
            raise ExportError(f"Could not export {job.names[0]}: {exc}") from exc
        out = {}
        for name in job.names:
            if stop.is_set():
                break
            _write_file(temp / name, data, options.fsync)
            out[name] = len(data)
        return out

    total = len(plan.files)
    done = 0
    start = time.perf_counter()
    progress(ProgressEvent("export", 0, total, f"writing {plan.naming.pattern}"))
    window = workers * 2  # bounded look-ahead keeps memory flat on long shots
    pending: set[Future] = set()
    jobs = iter(plan.jobs)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export") as pool:
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    job = next(jobs, None)
                    if job is None:
                        exhausted = True
                        break
                    pending.add(pool.submit(run, job))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    result = future.result()
                    sizes.update(result)
                    done += len(result)
                elapsed = time.perf_counter() - start
                eta = elapsed / done * (total - done) if done else None
                progress(ProgressEvent("export", done, total, plan.files[min(done, total) - 1] if done else "", eta))
                cancel.raise_if_cancelled()
        except BaseException:
            stop.set()
            for future in pending:
                future.cancel()
            raise
    return sizes
