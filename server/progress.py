"""Progress of long command-line work: a bar on a terminal, plain lines anywhere else.

A log file or a CI console gets one line per step (``demo-data: orders (4/23)``) instead of a
bar's carriage returns. Library code takes a :class:`Progress` (or None) and calls
:meth:`Progress.advance`; only the command line decides how it is shown.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, TextIO

import click


class Progress:
    """``total`` steps of work called ``label``, reported on ``stream`` (stderr by default)."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self._bar: Any = None
        if self.stream.isatty():
            self._bar = click.progressbar(
                length=total,
                label=label,
                file=self.stream,
                item_show_func=lambda item: item,
            )
            self._bar.__enter__()

    def advance(self, what: str, steps: int = 1) -> None:
        """``steps`` more steps are done; ``what`` names the one just finished."""
        self.done = min(self.total, self.done + steps)
        if self._bar is not None:
            self._bar.update(steps, current_item=what)
        else:
            self.stream.write(f"{self.label}: {what} ({self.done}/{self.total})\n")
            self.stream.flush()

    def note(self, what: str) -> None:
        """Say what the step under way is doing, without counting a step."""
        if self._bar is not None:
            # update() draws only after a whole step: show the item at once.
            self._bar.current_item = what
            self._bar.render_progress()
        else:
            self.stream.write(f"{self.label}: {what} ({self.done}/{self.total})\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
