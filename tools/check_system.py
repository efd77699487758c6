"""Before `make run` on Linux: are the system libraries Qt's X11 (xcb) platform plugin needs there?

Qt aborts with "Could not load the Qt platform plugin xcb" and no hint of which package is missing;
this says which Debian/Ubuntu packages to install instead. Exit 1 when some are missing, 0 otherwise
(and always 0 off Linux, offscreen, or under Wayland alone, where xcb is not used).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Callable

# library name (as ctypes.util.find_library takes it) -> Debian/Ubuntu package
QT_XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0",
    "xkbcommon-x11": "libxkbcommon-x11-0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-image": "libxcb-image0",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-randr": "libxcb-randr0",
    "xcb-render-util": "libxcb-render-util0",
    "xcb-shape": "libxcb-shape0",
    "xcb-xinerama": "libxcb-xinerama0",
    "xcb-xkb": "libxcb-xkb1",
    "EGL": "libegl1",
    "fontconfig": "libfontconfig1",
    "dbus-1": "libdbus-1-3",
}


def missing_packages(find: Callable[[str], str | None] = ctypes.util.find_library) -> list[str]:
    return [package for library, package in QT_XCB_LIBRARIES.items() if not find(library)]


def uses_xcb(environ: dict[str, str] | os._Environ = os.environ, platform: str = sys.platform) -> bool:
    if not platform.startswith("linux"):
        return False
    wanted = environ.get("QT_QPA_PLATFORM", "")
    if wanted:
        return wanted.startswith("xcb")
    return bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")


def main() -> int:
    if not uses_xcb():
        return 0
    missing = missing_packages()
    if not missing:
        return 0
    print("The app needs system libraries that Qt's X11 plugin loads, and these are missing:\n"
          f"  {' '.join(missing)}\n"
          f"Install them, e.g.: sudo apt-get install {' '.join(missing)}\n"
          "(or run headless commands: .venv/bin/tooncrafter-studio --help)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
