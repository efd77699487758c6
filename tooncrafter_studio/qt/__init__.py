"""The desktop app (the only package that imports PySide6)."""

from ._refcount_fix import apply as _apply_refcount_fix

_apply_refcount_fix()
