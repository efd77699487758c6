"""Import of image sequences and videos, frame reading, hold detection and the frame cache."""

from .cache import FrameCache, ThumbnailCache, thumbnail
from .imageio import MAX_PIXELS, probe_image, read_image, write_png
from .importer import ImportResult, frame_path, import_source, iter_source_frames, read_frame

__all__ = [
    "MAX_PIXELS", "FrameCache", "ImportResult", "ThumbnailCache", "frame_path", "import_source",
    "iter_source_frames", "probe_image", "read_frame", "read_image", "thumbnail", "write_png",
]
