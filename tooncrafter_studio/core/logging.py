"""Logging set-up for the app and the CLI (library code only calls `logging.getLogger(__name__)`)."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO, log_file: Path | None = None) -> None:
    """Configure the root 'tooncrafter_studio' logger once: stderr plus an optional rotating file."""
    logger = logging.getLogger("tooncrafter_studio")
    logger.setLevel(level)
    if getattr(logger, "_studio_configured", False):
        return
    stream = logging.StreamHandler()
    stream.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(stream)
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=3,
                                                           encoding="utf-8")
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            logger.addHandler(handler)
        except OSError:
            logger.warning("Cannot write the log file %s; logging to the console only", log_file)
    # Library warnings (numpy's RuntimeWarnings on odd pixels, ...) go to the log file, and to the
    # terminal only when debugging: they mean nothing to an animator.
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.propagate = False
    for handler in logger.handlers:
        if handler is not stream or level <= logging.DEBUG:
            warnings_logger.addHandler(handler)
    if not warnings_logger.handlers:
        warnings_logger.addHandler(logging.NullHandler())
    logger._studio_configured = True  # type: ignore[attr-defined]
