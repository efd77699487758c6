"""`make run`'s check for the system libraries Qt's X11 plugin needs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_system", ROOT / "tools" / "check_system.py")
check_system = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_system)


def test_names_the_missing_packages():
    present = {"xcb-icccm", "EGL"}
    missing = check_system.missing_packages(lambda name: f"lib{name}.so" if name in present else None)
    assert "libxcb-cursor0" in missing and "libxcb-icccm4" not in missing and "libegl1" not in missing


def test_only_checks_when_xcb_will_be_used():
    assert check_system.uses_xcb({"DISPLAY": ":0"}, "linux")
    assert not check_system.uses_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not check_system.uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, "linux")
    assert check_system.uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not check_system.uses_xcb({"DISPLAY": ":0"}, "darwin")


def test_make_run_message(tmp_path):
    script = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("c", {str(ROOT / 'tools' / 'check_system.py')!r})
c = importlib.util.module_from_spec(spec); spec.loader.exec_module(c)
c.uses_xcb = lambda: True
c.missing_packages = lambda: ["libxcb-cursor0"]
sys.exit(c.main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 1 and "sudo apt-get install libxcb-cursor0" in done.stderr
