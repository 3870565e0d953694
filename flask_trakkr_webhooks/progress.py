"""Progress bars for long CLI work: counts and rate on a terminal, nothing otherwise.

``with Progress("re-encrypting", total) as bar: ... bar.advance()`` redraws one line on
stderr at most every :data:`REDRAW` seconds (``label [#####.....] 1,200/5,000 48% 950/s``)
and ends it with the final count. When stderr is not a terminal (cron, a pipe, a CI log) it
writes nothing, so scripts see only the command's own output.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

#: Seconds between two redraws.
REDRAW = 0.1
#: Width of the bar in characters.
WIDTH = 30


class Progress:
    """One progress line (see the module docstring); ``stream`` defaults to stderr, ``enabled`` to
    whether it is a terminal."""

    def __init__(self, label: str, total: int, *, stream: IO[str] | None = None, enabled: bool | None = None) -> None:
        self.label = label
        self.total = max(0, total)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled if enabled is not None else _is_terminal(self.stream)
        self._started = time.monotonic()
        self._drawn = 0.0

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more items done."""
        self.done += steps
        self._draw()

    @property
    def rate(self) -> float:
        """Items per second so far."""
        elapsed = time.monotonic() - self._started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """The line as it would be drawn now."""
        share = self.done / self.total if self.total else 1.0
        filled = min(WIDTH, int(share * WIDTH))
        return (
            f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {self.done:,}/{self.total:,} "
            f"{share:.0%} {self.rate:,.0f}/s"
        )

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._drawn >= REDRAW:
            self._drawn = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False
