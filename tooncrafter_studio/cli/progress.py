"""tqdm progress bars for CLI commands, fed by the library's ProgressEvent callbacks."""

from __future__ import annotations

from tqdm import tqdm

from ..core.progress import ProgressEvent


class TqdmProgress:
    """A ProgressCallback that shows one bar per stage; silent when `quiet`."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._bar: tqdm | None = None
        self._stage: str | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if self.quiet:
            return
        if event.stage != self._stage:
            self.close()
            self._stage = event.stage
            self._bar = tqdm(total=event.total or None, desc=event.stage, unit="step", leave=False,
                             dynamic_ncols=True)
        assert self._bar is not None
        if event.total and self._bar.total != event.total:
            self._bar.total = event.total
        self._bar.n = event.done
        if event.message:
            self._bar.set_postfix_str(event.message, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
