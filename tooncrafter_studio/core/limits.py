"""The size limits of everything the app reads, in one place (the README lists them).

Every input is checked against these before anything is allocated for it: a 4 KB project that
claims a hundred million frames, or a 66-byte GIF that claims 16000x16000 pixels, is refused
with a message naming the file and the limit instead of exhausting memory.
"""

from __future__ import annotations

MAX_PIXELS = 80_000_000  # pixels per frame (8K UHD is 33 Mpx); below Pillow's own bomb warning
MAX_SIDE = 32_000  # pixels along one side of a frame (OpenCV's warps need < 32767)
MAX_SHOT_FRAMES = 100_000  # timeline frames of a shot, and frames of a source (69 min at 24 fps)
MAX_EXPOSURE = 10_000  # timeline frames one cell holds its drawing for
MAX_MISSING_FRAMES = 10_000  # frame numbers missing from an image sequence (a gap in its numbering)
MAX_INBETWEENS = 1000  # in-betweens generated for one pair of keys
MAX_SEEDS = 1000  # takes one `generate --seeds N` makes per pair (each adds ~2 KB to project.json)
MAX_FRAME_PADDING = 10  # digits of a frame number in a pattern or an export name
MAX_START_NUMBER = 999_999_999  # the first frame number of an export or of interpolate's files
MAX_NAME_BYTES = 200  # a file-name stem given by the user (most file systems allow 255 bytes in all)
MAX_PROJECT_FILE_BYTES = 64 << 20  # project.json and its recovery copy
MAX_SETTINGS_FILE_BYTES = 4 << 20  # settings.json
MAX_IMAGE_FILE_BYTES = 2 << 30  # one image file (an 80 Mpx 16-bit RGBA PNG stored raw is 640 MB)
MAX_JSON_DEPTH = 64  # nesting of objects and lists in a project file (ours is 6 deep)
MAX_FRAME_TEXT_CHARS = 100_000  # a frame list as typed ("1-5,9,..."); each range is checked before it is expanded


def describe_limits() -> list[tuple[str, str]]:
    """(what, limit) rows for the README and `--help`."""
    return [
        ("pixels per frame", f"{MAX_PIXELS / 1e6:g} Mpx, at most {MAX_SIDE} on a side"),
        ("frames per shot or source", f"{MAX_SHOT_FRAMES:,}"),
        ("exposure of one cell", f"{MAX_EXPOSURE:,} frames"),
        ("frame numbers missing from a sequence", f"{MAX_MISSING_FRAMES:,}"),
        ("in-betweens per pair of keys", f"{MAX_INBETWEENS:,}"),
        ("takes per pair in one run (generate --seeds)", f"{MAX_SEEDS:,}"),
        ("digits of a frame number; first number of an export", f"{MAX_FRAME_PADDING}; {MAX_START_NUMBER:,}"),
        ("project.json / recovery copy", f"{MAX_PROJECT_FILE_BYTES >> 20} MiB"),
        ("one image file", f"{MAX_IMAGE_FILE_BYTES >> 30} GiB"),
        ("a frame list (--frames, review, sketches)", f"{MAX_FRAME_TEXT_CHARS:,} characters, at most "
                                                      f"{MAX_SHOT_FRAMES:,} frames named"),
    ]
