"""Work around a reference-count bug of PySide6 6.12 wheels on Python 3.11.

Those wheels are built for the stable ABI with Python 3.12+ headers, where None, True and False
are immortal: every call of a C++ method that returns `void` hands back Py_None without taking a
reference. On Python 3.11 each such call therefore lowers None's reference count by one, and
after a few thousand Qt calls (a timer, a paint, a pool job) the interpreter deallocates None
and aborts ("none_dealloc"). We detect the leak with a harmless probe and, only when it is there,
give the singletons a reference count so large that the leak can never reach zero.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_PINNED = 1 << 40  # ~10^12 leaked calls before any trouble
_applied = False


def _leaks_none() -> bool:
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(50):
        probe.setObjectName("probe")  # a void method
    return sys.getrefcount(None) <= before - 40


def _pin(obj: object) -> bool:
    cell = ctypes.c_ssize_t.from_address(id(obj))
    expected = sys.getrefcount(obj) - 1  # without getrefcount's own argument reference
    if abs(cell.value - expected) > 8:  # not the layout we expect (debug build...): leave it alone
        return False
    cell.value += _PINNED
    return True


def apply() -> bool:
    """Pin None/True/False/Ellipsis/NotImplemented when the running PySide6 leaks them."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if not _leaks_none():
        return False
    pinned = all(_pin(obj) for obj in (None, True, False, Ellipsis, NotImplemented))
    _applied = pinned
    if pinned:
        log.debug("PySide6 reference-count leak of None detected; singletons pinned")
    else:
        log.warning("PySide6 leaks references to None on this Python and the work-around could not be "
                    "applied; the app may abort. Use Python 3.12+ or another PySide6 version.")
    return pinned
