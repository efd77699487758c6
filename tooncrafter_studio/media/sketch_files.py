"""Placing a sketch file: the image rules of import, applied the moment a sketch is placed.

A sketch is copied into the project and read again at every generation, so a text file named
.png or a decompression bomb must be refused when it is placed (one clear line, nothing copied),
not at the next `generate`. The bytes that are checked are the bytes that are copied: they are
read once, staged in a private temporary folder, probed and decoded there like an imported frame,
and only then written into the project's sketches/ folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..core.errors import MediaError
from ..project.document import SketchRef
from ..project.sketches import read_sketch_bytes, store_sketch_bytes
from .imageio import probe_image, read_image

SKETCH_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


FORMAT_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}


def check_image_bytes(data: bytes, name: str) -> str:
    """Raise MediaError naming `name` unless `data` is an image that import would read; its format."""
    suffix = Path(name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="tooncrafter-sketch-") as staging:
        staged = Path(staging) / f"sketch{suffix if suffix in SKETCH_SUFFIXES else '.img'}"
        staged.write_bytes(data)
        try:
            info = probe_image(staged)  # size limits (decompression bombs), truncation, not-an-image
            read_image(staged)  # the pixels decode, as generation will need them
        except MediaError as exc:
            raise MediaError(f"Sketch {str(exc).replace(str(staged), name)}") from None
    return info.format


def import_sketch_image(folder: Path, path: str | Path) -> SketchRef:
    """Check the image at `path` and copy it into the project's sketches/ folder; its reference."""
    source = Path(path)
    data = read_sketch_bytes(source)
    image_format = check_image_bytes(data, str(source))
    suffix = FORMAT_SUFFIXES.get(image_format.upper(), source.suffix.lower() or ".png")
    ref = store_sketch_bytes(folder, data, source.stem + suffix)  # named by what it is, not by its name
    ref.name = source.name
    return ref
