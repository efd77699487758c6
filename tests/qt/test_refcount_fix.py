"""PySide6 6.12 wheels leak a reference to None on every void call under Python 3.11; the qt
package pins the singletons so the app survives any number of Qt calls."""

from __future__ import annotations

import subprocess
import sys

from waiting import PROCESS_CEILING_S


def test_many_void_qt_calls_do_not_abort_the_interpreter():
    code = (
        "import sys\n"
        "import tooncrafter_studio.qt\n"
        "from PySide6.QtCore import QObject\n"
        "o = QObject()\n"
        "for _ in range(200_000):\n"
        "    o.setObjectName('x')\n"
        "print('alive', sys.getrefcount(None) > 1000)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=PROCESS_CEILING_S)
    assert result.returncode == 0, result.stderr[-1000:]
    assert "alive True" in result.stdout
