"""A moved or copied project whose drawings are read from where the original project had them.

project.json keeps each source relative to the project and, beside it, the absolute path at
saving. When the relative path is missing at opening but the absolute one still holds the files,
the source is read from there (serialize._usable_location) and marked. That is right for a project
copied without its drawings, and wrong for a copy whose own drawings folder was renamed: either
way the animator must be told, because the picture and any export then come from the original.
"""

from __future__ import annotations

from .document import Shot


def original_location_notes(shot: Shot | None) -> list[str]:
    """One sentence per source read from the original location instead of its relative path."""
    notes: list[str] = []
    if shot is None:
        return notes
    for source in shot.sources.values():
        if source.original_location is None or source.path != source.original_location[1]:
            continue
        relative, absolute = source.original_location
        notes.append(f"reading drawings from the original location {absolute} ({relative} is missing next to "
                     "this project); relink to use other files")
    return notes
