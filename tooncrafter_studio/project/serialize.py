"""project.json: the shot as versioned JSON, with migrations and strict checks on load.

The file carries `schema_version`. Older files are brought up to date by a chain of migration
steps (one function per version, registered with `@migration(from_version)`), so every file we
ever wrote keeps opening. A file from a newer version of the app is refused with a message that
says so, instead of being half-read and then overwritten.

Loading refuses, each with a ProjectError naming the file and the field: malformed JSON,
missing or mistyped fields, references to things that do not exist, unsafe ids, and paths of
internal files (take frames) that are absolute or climb out of the project folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ..core.errors import InputError, ProjectError
from ..core.fsio import read_regular_file
from ..core.limits import (
    MAX_EXPOSURE,
    MAX_INBETWEENS,
    MAX_JSON_DEPTH,
    MAX_MISSING_FRAMES,
    MAX_PIXELS,
    MAX_PROJECT_FILE_BYTES,
    MAX_SHOT_FRAMES,
    MAX_SIDE,
)
from .document import (
    Cell,
    Drawing,
    ReviewStatus,
    Segment,
    SegmentSettings,
    Shot,
    SketchRef,
    Source,
    SourceKind,
    Spacing,
    Take,
    TakeFrame,
    validate_settings,
)
from .relink import portable_path
from .timing_sheet import SheetDataError, sheet_from_dict, sheet_to_dict

log = logging.getLogger(__name__)

FORMAT_NAME = "tooncrafter-studio-project"
SCHEMA_VERSION = 1

# Ids become file names (takes/<take id>/), so they are kept to a safe alphabet.
SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")

Migration = Callable[[dict[str, Any]], dict[str, Any]]
MIGRATIONS: dict[int, Migration] = {}


def migration(from_version: int) -> Callable[[Migration], Migration]:
    """Register a step that turns a schema `from_version` document into `from_version + 1`."""

    def register(step: Migration) -> Migration:
        MIGRATIONS[from_version] = step
        return step

    return register


class _Bad(Exception):
    """A problem at a place in the document; turned into a ProjectError naming the file."""


# --------------------------------------------------------------------------- paths


def is_safe_id(value: object) -> bool:
    return isinstance(value, str) and bool(SAFE_ID.match(value))


def check_internal_path(relative: str, folder: Path | None = None) -> str:
    """Return `relative` normalised to forward slashes, or raise ValueError when it is not a path
    strictly inside the project folder (absolute, drive letter, '..', or a symlink leading out)."""
    return InternalPaths(folder).check(relative)


class InternalPaths:
    """Checks many internal paths against one folder, resolving each directory only once."""

    def __init__(self, folder: Path | None) -> None:
        self.root = folder.resolve() if folder is not None else None
        self._dirs: dict[str, bool] = {}

    def _inside(self, target: Path) -> bool:
        assert self.root is not None
        return target == self.root or self.root in target.parents

    def check(self, relative: str) -> str:
        if not isinstance(relative, str) or not relative.strip():
            raise ValueError("an empty path")
        text = relative.replace("\\", "/")
        if PurePosixPath(text).is_absolute() or PureWindowsPath(relative).is_absolute() \
                or PureWindowsPath(relative).drive or text.startswith("/"):
            raise ValueError(f"'{relative}' is an absolute path")
        parts = [part for part in PurePosixPath(text).parts if part != "."]
        if any(part == ".." for part in parts):
            raise ValueError(f"'{relative}' leads outside the project folder")
        if not parts:
            raise ValueError("an empty path")
        normal = "/".join(parts)
        if self.root is not None:
            parent = "/".join(parts[:-1])
            inside = self._dirs.get(parent)
            if inside is None:
                inside = self._dirs[parent] = self._inside((self.root / parent).resolve())
            full = self.root / normal
            if not inside or (full.is_symlink() and not self._inside(full.resolve())):
                raise ValueError(f"'{relative}' leads outside the project folder (through a link)")
        return normal


def relative_if_inside(path: str, folder: Path) -> str:
    """A path inside `folder` as a forward-slash relative path; any other path unchanged."""
    candidate = Path(path)
    if not candidate.is_absolute():
        return path.replace("\\", "/")
    try:
        return candidate.resolve().relative_to(folder.resolve()).as_posix() or "."
    except ValueError:
        return path


# --------------------------------------------------------------------------- writing


def _settings_to_dict(settings: SegmentSettings) -> dict[str, Any]:
    return {
        "count": settings.count,
        "exposure": settings.exposure,
        "spacing": str(Spacing(settings.spacing).value),
        "times": list(settings.times) if settings.times is not None else None,
        "engine": settings.engine,
        "params": settings.params,
        "prompt": settings.prompt,
        "seed": settings.seed,
        **({"sketches": {str(o): {"file": r.file, "sha256": r.sha256, "name": r.name}
                         for o, r in sorted(settings.sketches.items())},
            "sketch_scale": settings.sketch_scale} if settings.sketches or settings.sketch_scale != 0.6 else {}),
        **({"offsets": list(settings.offsets)} if settings.offsets is not None else {}),
        **({"arc": [float(settings.arc[0]), float(settings.arc[1])]} if settings.arc is not None else {}),
    }


def shot_to_dict(shot: Shot, folder: Path | None = None) -> dict[str, Any]:
    """The shot as plain JSON data (schema SCHEMA_VERSION, without the envelope)."""

    def reading_original(source: Source) -> bool:
        return source.original_location is not None and source.path == source.original_location[1]

    def source_path(source: Source) -> str:
        if reading_original(source):  # keep the relative path first: it wins again once it is back
            return source.original_location[0]
        return portable_path(source.path, folder) if folder is not None else source.path

    def located(source: Source) -> dict[str, Any]:  # where it was, for a copy whose relative path breaks
        if folder is None:
            return {}
        path = Path(source.path)
        return {"absolute_path": str(path if path.is_absolute() else (folder / path).resolve())}

    return {
        "name": shot.name,
        "fps": shot.fps,
        "width": shot.width,
        "height": shot.height,
        "has_alpha": shot.has_alpha,
        "bit_depth": shot.bit_depth,
        "sources": [
            {"id": s.id, "kind": str(SourceKind(s.kind).value), "path": source_path(s), "files": list(s.files),
             "width": s.width, "height": s.height, "fps": s.fps, "frame_count": s.frame_count,
             "has_alpha": s.has_alpha, "bit_depth": s.bit_depth, "gaps": list(s.gaps), "hashes": dict(s.hashes),
             **located(s)}
            for s in shot.sources.values()
        ],
        "drawings": [
            {"id": d.id, "source": d.source_id, "frame": d.source_frame, "key": d.is_key, "label": d.label}
            for d in shot.drawings.values()
        ],
        "cells": [{"drawing": c.drawing_id, "length": c.length} for c in shot.cells],
        "segments": [
            {"start_key": seg.start_key, "end_key": seg.end_key, "settings": _settings_to_dict(seg.settings),
             "takes": list(seg.take_ids), "active_take": seg.active_take, "takes_made": seg.takes_made}
            for seg in shot.segments.values()
        ],
        "takes": [take_to_dict(t) for t in shot.takes.values()],
        **({"sheet": sheet_to_dict(shot.sheet), "sheet_track": shot.sheet_track} if shot.sheet is not None else {}),
    }


def take_to_dict(t: Take) -> dict[str, Any]:
    """One take as plain JSON data (as in project.json, and as a take folder's manifest)."""
    return {"id": t.id, "start_key": t.start_key, "end_key": t.end_key, "label": t.label, "created": t.created,
            "seed": t.seed, "engine": t.engine, "params": t.params,
            "frames": [{"file": f.file, "offset": f.offset, "time": f.time, "status": str(ReviewStatus(f.status).value)}
                       for f in t.frames]}


def document_to_json(shot: Shot, folder: Path | None = None, extra: dict[str, Any] | None = None) -> str:
    from .. import __version__

    envelope: dict[str, Any] = {"format": FORMAT_NAME, "schema_version": SCHEMA_VERSION,
                                "app_version": __version__}
    if extra:
        envelope.update(extra)
    envelope["shot"] = shot_to_dict(shot, folder)
    try:
        text = json.dumps(envelope, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a file name that is not valid text (bytes from another system)
        bad = exc.object[max(0, exc.start - 40):exc.end + 10].encode("utf-8", "backslashreplace").decode()
        raise ProjectError(f"The project cannot be saved: a file name is not valid text (…{bad}…); rename it.") \
            from None
    except (TypeError, ValueError) as exc:  # a parameter that JSON cannot hold: a bug upstream
        raise ProjectError(f"The project cannot be saved: a value is not storable as JSON ({exc}).") from exc
    if size > MAX_PROJECT_FILE_BYTES:  # document_from_json would refuse it: a file no one could open again
        raise ProjectError(f"The project is too large to open again ({size / 2**20:.1f} MiB, over the "
                           f"{MAX_PROJECT_FILE_BYTES >> 20} MiB a project file may hold), so it was not saved; "
                           "delete takes you no longer need.")
    return text


# --------------------------------------------------------------------------- reading


class _Reader:
    """Typed access to a JSON object, with the place in the document for messages."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise _Bad(f"{where} should be an object")
        self.data = data
        self.where = where

    def _get(self, key: str, default: object, required: bool) -> object:
        if key not in self.data:
            if required:
                raise _Bad(f"the field {self.where}.{key} is missing")
            return default
        return self.data[key]

    def str(self, key: str, default: str | None = None, required: bool = True, none: bool = False) -> Any:
        value = self._get(key, default, required)
        if value is None and (none or not required):
            return value
        if not isinstance(value, str):
            raise _Bad(f"{self.where}.{key} should be text")
        return value

    def int(self, key: str, default: int | None = None, required: bool = True, none: bool = False,
            minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self._get(key, default, required)
        if value is None and (none or not required):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"{self.where}.{key} should be a whole number")
        if minimum is not None and value < minimum:
            raise _Bad(f"{self.where}.{key} should be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise _Bad(f"{self.where}.{key} is {value}, above the limit of {maximum:,}")
        return value

    def float(self, key: str, default: float | None = None, required: bool = True) -> Any:
        value = self._get(key, default, required)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Bad(f"{self.where}.{key} should be a number")
        return float(value)

    def bool(self, key: str, default: bool = False, required: bool = False) -> bool:
        value = self._get(key, default, required)
        if not isinstance(value, bool):
            raise _Bad(f"{self.where}.{key} should be true or false")
        return value

    def list(self, key: str, required: bool = True, limit: int = MAX_SHOT_FRAMES) -> list:
        value = self._get(key, [], required)
        if not isinstance(value, list):
            raise _Bad(f"{self.where}.{key} should be a list")
        if len(value) > limit:
            raise _Bad(f"{self.where}.{key} has {len(value):,} entries, above the limit of {limit:,}")
        return value

    def dict(self, key: str, required: bool = False) -> dict:
        value = self._get(key, {}, required)
        if not isinstance(value, dict):
            raise _Bad(f"{self.where}.{key} should be an object")
        return value

    def sub(self, key: str) -> _Reader:
        return _Reader(self._get(key, None, True), f"{self.where}.{key}")

    def enum(self, key: str, kind: type, default: object = None, required: bool = True) -> Any:
        value = self.str(key, default, required)
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(str(v.value) for v in kind)
            raise _Bad(f"{self.where}.{key} is '{value}', expected one of {allowed}") from None


def _unique_id(value: str, where: str, seen: set[str]) -> str:
    if not is_safe_id(value):
        raise _Bad(f"{where} '{value}' is not a valid id (letters, digits, '.', '_' and '-' only)")
    if value in seen:
        raise _Bad(f"{where} '{value}' is used twice")
    seen.add(value)
    return value


def _read_sketches(r: _Reader) -> dict[int, SketchRef]:
    """Optional `sketches` {offset: {file, sha256, name}} (absent in files without sketches)."""
    out: dict[int, SketchRef] = {}
    for offset, entry in r.dict("sketches").items():
        if not str(offset).isdigit():
            raise _Bad(f"{r.where}.sketches: '{offset}' is not an in-between frame offset")
        e = _Reader(entry, f"{r.where}.sketches.{offset}")
        try:
            file = check_internal_path(e.str("file"))
        except ValueError as exc:
            raise _Bad(f"{e.where}.file: {exc}") from None
        out[int(offset)] = SketchRef(file, e.str("sha256"), e.str("name", "", required=False))
    return out


def _read_arc(r: _Reader) -> tuple[float, float] | None:
    value = r.data.get("arc")
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise _Bad(f"{r.where}.arc should be a list of two numbers")
    return (float(value[0]), float(value[1]))


def _read_settings(r: _Reader) -> SegmentSettings:
    times = r.list("times", required=False) if r.data.get("times") is not None else None
    if times is not None and not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in times):
        raise _Bad(f"{r.where}.times should be a list of numbers")
    settings = SegmentSettings(
        count=r.int("count", required=False, minimum=1),
        exposure=r.int("exposure", 2, required=False, minimum=1),
        spacing=r.enum("spacing", Spacing, "linear", required=False),
        times=[float(t) for t in times] if times is not None else None,
        engine=r.str("engine", "flow", required=False) or "flow",
        params=r.dict("params"),
        prompt=r.str("prompt", "", required=False) or "",
        seed=r.int("seed", required=False, minimum=0),
        sketches=_read_sketches(r),
        sketch_scale=r.float("sketch_scale", 0.6, required=False),
        offsets=r.list("offsets", required=False, limit=MAX_INBETWEENS) if r.data.get("offsets") is not None
        else None,
        arc=_read_arc(r),
    )
    try:
        validate_settings(settings)
    except InputError as exc:
        raise _Bad(f"{r.where}: {str(exc).rstrip('.')}") from None
    return settings


def _usable_location(source: Source, absolute: str, folder: Path) -> str:
    """Where a source stored relative to the project is, as kept in memory: relative when inside the
    project, absolute when outside it (`../plates` -> `/shows/plates`). Only when the relative path
    leads nowhere and the absolute one recorded at saving still works (the project was copied
    elsewhere and its drawings stayed where they were) that one, marked on the source so that
    info, the studio and export say the drawings are read from the original location."""
    relative = source.path
    if not (folder / relative).exists() and absolute and Path(absolute).is_absolute() \
            and Path(absolute).exists():
        source.original_location = (relative.replace("\\", "/"), absolute)
        return absolute
    if relative.replace("\\", "/").split("/", 1)[0] == "..":
        return os.path.normpath(folder / relative)
    return relative


def _check_frame_size(where: str, width: int, height: int) -> None:
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise _Bad(f"{where} claims frames of {width}x{height}, above the limit of {MAX_PIXELS / 1e6:g} Mpx "
                   f"({MAX_SIDE} on a side)")


def shot_from_dict(data: dict[str, Any], folder: Path | None) -> Shot:
    """Build and cross-check a Shot from current-schema data; raises _Bad."""
    r = _Reader(data, "shot")
    shot = Shot(name=r.str("name", "shot", required=False) or "shot", fps=r.float("fps", 24.0, required=False),
                width=r.int("width", 0, required=False, minimum=0), height=r.int("height", 0, required=False, minimum=0),
                has_alpha=r.bool("has_alpha"), bit_depth=r.int("bit_depth", 8, required=False))
    _check_frame_size("shot", shot.width, shot.height)
    if not shot.fps > 0:
        raise _Bad(f"shot.fps should be above 0, not {shot.fps}")
    if shot.bit_depth not in (8, 16):
        raise _Bad(f"shot.bit_depth should be 8 or 16, not {shot.bit_depth}")

    seen: set[str] = set()
    for i, item in enumerate(r.list("sources")):
        s = _Reader(item, f"shot.sources[{i}]")
        files = s.list("files", required=False)
        if not all(isinstance(f, str) for f in files):
            raise _Bad(f"{s.where}.files should be a list of file names")
        gaps = s.list("gaps", required=False, limit=MAX_MISSING_FRAMES)
        source = Source(id=_unique_id(s.str("id"), f"{s.where}.id", seen), kind=s.enum("kind", SourceKind),
                        path=s.str("path"), files=list(files), width=s.int("width", 0, required=False, minimum=0),
                        height=s.int("height", 0, required=False, minimum=0), fps=s.float("fps", 24.0, required=False),
                        frame_count=s.int("frame_count", len(files), required=False, minimum=0,
                                          maximum=MAX_SHOT_FRAMES),
                        has_alpha=s.bool("has_alpha"), bit_depth=s.int("bit_depth", 8, required=False),
                        gaps=[int(g) for g in gaps if isinstance(g, int)],
                        hashes={k: v for k, v in s.dict("hashes").items() if isinstance(k, str) and isinstance(v, str)})
        absolute = s.str("absolute_path", "", required=False) or ""
        if folder is not None and not Path(source.path).is_absolute():
            source.path = _usable_location(source, absolute, folder)
        _check_frame_size(s.where, source.width, source.height)
        shot.sources[source.id] = source

    seen = set()
    for i, item in enumerate(r.list("drawings")):
        d = _Reader(item, f"shot.drawings[{i}]")
        drawing = Drawing(id=_unique_id(d.str("id"), f"{d.where}.id", seen), source_id=d.str("source"),
                          source_frame=d.int("frame", minimum=0, maximum=MAX_SHOT_FRAMES), is_key=d.bool("key"),
                          label=d.str("label", "", required=False) or "")
        source = shot.sources.get(drawing.source_id)
        if source is None:
            raise _Bad(f"{d.where} refers to source '{drawing.source_id}', which is not in the project")
        if source.frame_count and drawing.source_frame >= source.frame_count:
            raise _Bad(f"{d.where} shows frame {drawing.source_frame + 1} of source '{source.id}', "
                       f"which has {source.frame_count}")
        shot.drawings[drawing.id] = drawing

    total = 0
    for i, item in enumerate(r.list("cells")):
        c = _Reader(item, f"shot.cells[{i}]")
        cell = Cell(c.str("drawing"), c.int("length", 1, required=False, minimum=1, maximum=MAX_EXPOSURE))
        total += cell.length
        if total > MAX_SHOT_FRAMES:
            raise _Bad(f"the cells add up to more than {MAX_SHOT_FRAMES:,} frames, the limit for a shot")
        if cell.drawing_id not in shot.drawings:
            raise _Bad(f"{c.where} refers to drawing '{cell.drawing_id}', which is not in the project")
        shot.cells.append(cell)

    seen = set()
    paths = InternalPaths(folder)
    for i, item in enumerate(r.list("takes", required=False)):
        take = _read_take(_Reader(item, f"shot.takes[{i}]"), paths, seen, shot)
        shot.takes[take.id] = take

    owner: dict[str, tuple[str, str]] = {}
    for i, item in enumerate(r.list("segments", required=False)):
        g = _Reader(item, f"shot.segments[{i}]")
        segment = Segment(g.str("start_key"), g.str("end_key"),
                          _read_settings(_Reader(g.data.get("settings", {}), f"{g.where}.settings")),
                          list(g.list("takes", required=False)), g.str("active_take", required=False, none=True),
                          g.int("takes_made", 0, required=False, minimum=0))
        if segment.key in shot.segments:
            raise _Bad(f"{g.where} repeats the key pair {segment.key}")
        for key in segment.key:
            if key not in shot.drawings:
                raise _Bad(f"{g.where} refers to key '{key}', which is not a drawing of the project")
        for take_id in segment.take_ids:
            take = shot.takes.get(take_id) if isinstance(take_id, str) else None
            if take is None:
                raise _Bad(f"{g.where} lists take '{take_id}', which is not in the project")
            if (take.start_key, take.end_key) != segment.key or take_id in owner:
                raise _Bad(f"{g.where} lists take '{take_id}', which belongs to another key pair")
            owner[take_id] = segment.key
        if segment.active_take is not None and segment.active_take not in segment.take_ids:
            raise _Bad(f"{g.where}.active_take '{segment.active_take}' is not one of its takes")
        shot.segments[segment.key] = segment
    if data.get("sheet") is not None:
        try:
            shot.sheet = sheet_from_dict(data["sheet"], "shot.sheet")
        except SheetDataError as exc:
            raise _Bad(str(exc)) from None
        shot.sheet_track = r.str("sheet_track", "", required=False) or ""
    orphans = [take_id for take_id in shot.takes if take_id not in owner]
    for take_id in orphans:  # a take listed by no segment: attach it rather than lose it
        take = shot.takes[take_id]
        key = (take.start_key, take.end_key)
        shot.segments.setdefault(key, Segment(*key)).take_ids.append(take_id)
    return shot


def _read_take(t: _Reader, paths: InternalPaths, seen: set[str], shot: Shot) -> Take:
    frames = []
    for j, frame_item in enumerate(t.list("frames", limit=MAX_INBETWEENS)):
        f = _Reader(frame_item, f"{t.where}.frames[{j}]")
        try:
            file = paths.check(f.str("file"))
        except ValueError as exc:
            raise _Bad(f"{f.where}.file is unsafe: {exc}") from None
        time = f.float("time")
        if not 0.0 < time < 1.0:
            raise _Bad(f"{f.where}.time should be inside (0, 1), not {time}")
        frames.append(TakeFrame(file, f.int("offset", minimum=1, maximum=MAX_SHOT_FRAMES), time,
                                f.enum("status", ReviewStatus, "pending", required=False)))
    take = Take(id=_unique_id(t.str("id"), f"{t.where}.id", seen), start_key=t.str("start_key"),
                end_key=t.str("end_key"), frames=frames, engine=t.dict("engine"), params=t.dict("params"),
                seed=t.int("seed", required=False), created=t.str("created", "", required=False) or "",
                label=t.str("label", "", required=False) or "")
    for key in (take.start_key, take.end_key):
        if key not in shot.drawings:
            raise _Bad(f"{t.where} refers to key '{key}', which is not a drawing of the project")
    return take


def migrate(data: dict[str, Any], source_name: str = "project.json") -> dict[str, Any]:
    """Bring a parsed document up to SCHEMA_VERSION (or refuse one from the future)."""
    if "schema_version" in data:
        version = data["schema_version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ProjectError(f"{source_name} has an invalid schema_version ({version!r}).")
    elif "exposures" in data:  # the prototype's format, before versions were written
        version = 0
    else:
        raise ProjectError(f"{source_name} is not a ToonCrafter Studio project (it has no schema_version).")
    if version > SCHEMA_VERSION:
        raise ProjectError(
            f"{source_name} was saved by a newer ToonCrafter Studio (project schema {version}; this version "
            f"reads up to {SCHEMA_VERSION}). Update the app to open it.")
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:  # pragma: no cover - a gap in the registry is a bug
            raise ProjectError(f"{source_name}: no migration from project schema {version}.")
        try:
            data = step(data)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ProjectError(f"{source_name} uses project schema {version} but is incomplete or damaged "
                               f"({type(exc).__name__}: {exc}); it cannot be upgraded.") from exc
        version += 1
        data["schema_version"] = version
    return data


def document_from_json(text: str | bytes, folder: Path | None, source_name: str = "project.json") -> tuple[Shot, dict]:
    """Parse, migrate and check a project document; returns (shot, envelope without 'shot')."""
    if len(text) > MAX_PROJECT_FILE_BYTES:
        raise ProjectError(f"{source_name} is too large for a project file (over "
                           f"{MAX_PROJECT_FILE_BYTES >> 20} MiB); it may be damaged.")
    try:
        data = json.loads(text)
    except UnicodeDecodeError:
        raise ProjectError(f"{source_name} is not a text file; it may be damaged.") from None
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{source_name} is damaged: invalid JSON at line {exc.lineno}, "
                           f"column {exc.colno} ({exc.msg}).") from None
    except RecursionError:
        raise ProjectError(f"{source_name} is damaged: its JSON is nested too deeply.") from None
    except (ValueError, MemoryError) as exc:  # e.g. an integer of thousands of digits
        raise ProjectError(f"{source_name} is damaged: {_short(exc)}.") from None
    if not isinstance(data, dict):
        raise ProjectError(f"{source_name} is not a ToonCrafter Studio project (not a JSON object).")
    if _depth_exceeds(data, MAX_JSON_DEPTH):
        raise ProjectError(f"{source_name} is damaged: its JSON is nested more than {MAX_JSON_DEPTH} levels deep.")
    data = migrate(data, source_name)
    if "shot" not in data:
        raise ProjectError(f"{source_name} is damaged: the field 'shot' is missing.")
    try:
        shot = shot_from_dict(data["shot"], folder)
    except _Bad as exc:
        raise ProjectError(f"{source_name} is damaged: {exc}.") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        # a shape of damage the checks above do not name: still the file's fault, said in one line
        log.debug("Unexpected damage in %s", source_name, exc_info=True)
        raise ProjectError(f"{source_name} is damaged ({type(exc).__name__}: {_short(exc)}).") from None
    envelope = {k: v for k, v in data.items() if k != "shot"}
    return shot, envelope


def read_document(path: Path, folder: Path) -> tuple[Shot, dict]:
    if not os.path.lexists(path):
        raise ProjectError(f"{path} does not exist; is {folder} a ToonCrafter Studio project?")
    raw = read_regular_file(path, MAX_PROJECT_FILE_BYTES, ProjectError, "project file")
    return document_from_json(raw, folder, str(path))


MAX_TAKE_MANIFEST_BYTES = 4 << 20  # a take folder's take.json (a take of 1000 frames is ~200 KB)


def take_from_json(raw: bytes, shot: Shot, folder: Path, source_name: str) -> Take:
    """A take manifest (take_to_dict as JSON) checked like a take in project.json, against `shot`:
    safe id not already in the shot, keys that are drawings of it, frame files inside `folder`."""
    if len(raw) > MAX_TAKE_MANIFEST_BYTES:
        raise ProjectError(f"{source_name} is too large for a take manifest.")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError, MemoryError) as exc:
        raise ProjectError(f"{source_name} is damaged ({type(exc).__name__}).") from None
    if not isinstance(data, dict) or _depth_exceeds(data, MAX_JSON_DEPTH):
        raise ProjectError(f"{source_name} is not a take manifest.")
    try:
        return _read_take(_Reader(data, "take"), InternalPaths(folder), set(shot.takes), shot)
    except _Bad as exc:
        raise ProjectError(f"{source_name} is damaged: {exc}.") from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise ProjectError(f"{source_name} is damaged ({type(exc).__name__}: {_short(exc)}).") from None


def _short(exc: BaseException, limit: int = 160) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def _depth_exceeds(value: object, limit: int) -> bool:
    """Whether JSON data nests deeper than `limit` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values() if isinstance(child, (dict, list)))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return False


# --------------------------------------------------------------------------- migrations


@migration(0)
def _v0_to_v1(old: dict[str, Any]) -> dict[str, Any]:
    """The prototype's flat file -> schema 1.

    v0 had one source (`source`), drawings implied by `exposures` ([source frame, length] pairs),
    keys as a list of source frames, and takes keyed by their key source frames, with a parallel
    list of statuses.
    """
    src = old["source"]
    source_id = "src-1"
    files = list(src.get("files", []))
    kind = "video" if str(src["path"]).lower().endswith((".mp4", ".mov", ".avi", ".mkv", ".webm")) else "sequence"
    source = {"id": source_id, "kind": kind, "path": src["path"], "files": files,
              "width": int(src.get("width", 0)), "height": int(src.get("height", 0)),
              "fps": float(old.get("fps", 24.0)), "frame_count": int(src.get("frame_count", len(files))),
              "has_alpha": bool(src.get("alpha", False)), "bit_depth": int(src.get("bit_depth", 8)), "gaps": []}
    keys = {int(k) for k in old.get("keys", [])}

    def drawing_id(frame: int) -> str:
        return f"d{frame + 1:04d}"

    drawings: dict[str, dict[str, Any]] = {}
    cells = []
    for frame, length in old["exposures"]:
        frame, length = int(frame), int(length)
        drawings.setdefault(drawing_id(frame), {"id": drawing_id(frame), "source": source_id, "frame": frame,
                                                "key": frame in keys, "label": ""})
        cells.append({"drawing": drawing_id(frame), "length": length})
    takes = []
    segments: dict[tuple[str, str], dict[str, Any]] = {}
    for take in old.get("takes", []):
        start, end = (drawing_id(int(k)) for k in take["keys"])
        statuses = take.get("status", ["pending"] * len(take["files"]))
        frames = [{"file": f, "offset": int(o), "time": float(t), "status": s}
                  for f, o, t, s in zip(take["files"], take["offsets"], take["times"], statuses, strict=True)]
        takes.append({"id": take["id"], "start_key": start, "end_key": end, "label": take.get("label", ""),
                      "created": take.get("created", ""), "seed": take.get("seed"),
                      "engine": {"engine": take.get("engine", "flow")}, "params": {"times": take["times"]},
                      "frames": frames})
        segment = segments.setdefault((start, end), {"start_key": start, "end_key": end, "settings": {},
                                                     "takes": [], "active_take": None})
        segment["takes"].append(take["id"])
        segment["active_take"] = take["id"]
    return {
        "format": FORMAT_NAME,
        "schema_version": 1,
        "shot": {"name": old.get("name", "shot"), "fps": float(old.get("fps", 24.0)),
                 "width": source["width"], "height": source["height"], "has_alpha": source["has_alpha"],
                 "bit_depth": source["bit_depth"], "sources": [source], "drawings": list(drawings.values()),
                 "cells": cells, "segments": list(segments.values()), "takes": takes},
    }
