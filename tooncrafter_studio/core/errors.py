"""Errors that carry a message meant for the animator.

Every error the app reports to a person derives from `StudioError`; its `str()` is one clear
sentence that names what went wrong and, where useful, what to do. Anything else escaping to the
CLI or GUI is a bug and is shown with a traceback only in debug mode.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base class: the message is for the user, never a traceback.

    `resource` is True when the cause is the machine rather than the input (a full disk, no
    permission to write, not enough memory, no GPU, a project open elsewhere): the same command
    may work elsewhere or later. The CLI turns it into its own exit code.
    """

    resource = False


class ResourceError(StudioError):
    """The machine lacks something the work needs: disk space, write permission, memory, a GPU."""

    resource = True


class InputError(StudioError):
    """Bad input from the user: a missing file, an unreadable image, an invalid option."""


class MediaError(InputError):
    """An image or video that cannot be read, or frames that do not fit together."""


class ProjectError(StudioError):
    """A project that cannot be opened or saved."""


class ExportError(StudioError):
    """An export that could not be written."""


class EngineUnavailable(ResourceError):
    """An engine that cannot run here; the message says why (no CUDA, no model, ...)."""


class ModelError(StudioError):
    """A model file that is missing, truncated, unsafe or of the wrong architecture."""


class OutOfMemory(ResourceError):
    """Generation needs more (GPU) memory than is free, even in the lowest mode."""


class ProjectLocked(ProjectError):
    """The project is open for writing in another app window or command (see project/ownership.py)."""

    resource = True


class NumericalError(StudioError):
    """NaN or infinite values in a generation (half-precision overflow): the job fails and writes nothing."""


class Cancelled(StudioError):
    """The user cancelled; whatever was being made is discarded, nothing half-written remains."""

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)
