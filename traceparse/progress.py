"""Progress on stderr (rich) for an analysis that takes more than a second; `--quiet` silences it.

`Progress` is the callback the pipeline reports to: `progress(stage, fraction)`, fraction in 0..1
or None when unknown. The display starts at the first report after a run has lasted `delay`
seconds (small traces print nothing), only on a terminal, and it is transient: nothing is left
behind on stderr. No thread runs before that (the loader may fork its decoding workers).
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any


class Progress:
    def __init__(self, enabled: bool = True, delay: float = 1.0, console: Any = None) -> None:
        self.enabled = enabled and (console is not None or sys.stderr.isatty())
        self.delay = delay
        self._console = console
        self._bar: Any = None
        self._task: Any = None
        self._t0 = 0.0
        self._lock = threading.Lock()
        self._started = False
        self.shown = False  # whether the display ever appeared

    def __enter__(self) -> Progress:
        self._t0 = time.monotonic()
        return self

    def _start(self, stage: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=self._console or Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task(stage, total=None)
        self._bar.start()
        self._started = self.shown = True

    def __call__(self, stage: str, fraction: float | None = None) -> None:
        if not self.enabled:
            return
        with self._lock:
            if not self._started:
                if time.monotonic() - self._t0 < self.delay:
                    return
                self._start(stage)
            if fraction is None:
                self._bar.update(self._task, description=stage, total=None)
            else:
                self._bar.update(self._task, description=stage, total=1.0, completed=max(0.0, min(1.0, fraction)))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            if self._started:
                self._bar.stop()
                self._started = False
