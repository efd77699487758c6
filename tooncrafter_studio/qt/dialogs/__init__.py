"""The studio's dialogs: export, settings, new project from a pattern, engine setup, timing-sheet import."""
