"""A long job's progress on stderr: a bar redrawn on a terminal, a log line every few seconds
otherwise (a CI log, a file)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

LOG_EVERY_SECONDS = 5.0
DRAW_EVERY_SECONDS = 0.2


class Progress:
    """Reports `done` of `total` units of the phase under way."""

    def __init__(self, out: TextIO | None = None, unit: str = "records") -> None:
        self._out = out or sys.stderr
        self._tty = self._out.isatty()
        self._unit = unit
        self._phase = ""
        self._total = 0
        self._started = time.monotonic()
        self._shown = 0.0

    def phase(self, name: str, total: int = 0) -> None:
        """A new phase starts (its line is shown at once)."""
        self._end_line()
        self._phase, self._total = name, total
        self._started = time.monotonic()
        self._shown = 0.0
        self.update(0, force=True)

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        now = time.monotonic()
        every = DRAW_EVERY_SECONDS if self._tty else LOG_EVERY_SECONDS
        if not force and now - self._shown < every:
            return
        self._shown = now
        elapsed = now - self._started
        rate = f", {done / elapsed:,.0f} {self._unit}/s" if elapsed > 0.5 else ""
        of = f"/{self._total:,}" if self._total else ""
        text = f"{self._phase}: {done:,}{of} {self._unit}{rate}{'; ' + note if note else ''}"
        if self._tty:
            bar = ""
            if self._total:
                filled = min(30, 30 * done // self._total)
                bar = f"[{'#' * filled}{'.' * (30 - filled)}] "
            self._out.write(f"\r\x1b[K{bar}{text}")
        else:
            self._out.write(text + "\n")
        self._out.flush()

    def done(self, done: int, note: str = "") -> None:
        self.update(done, note, force=True)
        self._end_line()

    def _end_line(self) -> None:
        if self._tty and self._phase:
            self._out.write("\n")
            self._out.flush()
        self._phase = ""
