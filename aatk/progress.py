"""Progress of long computations: a text bar on standard error, in the manner of Keras's Progbar.

Evaluations, analyses and the pseudo-input datasets take minutes to hours; the functions
behind them take a ``progress`` argument: ``False`` (the default: silent), ``True`` (a
bar on standard error) or a [`Progress`][aatk.progress.Progress] made by the caller,
e.g. one with a label naming the run. The command line turns it on unless ``--quiet``.

On a terminal the bar is redrawn in place; in a log file (standard error not a terminal)
a line is written when a bar starts, when it ends and, in between, at most every
``log_every`` seconds — or at every new step of a bar of few units (an ε of a curve, a
dataset), so that logs stay short and still say what was done. Standard output is never written: what
commands print there (tables, reports) stays parseable.

This module imports nothing heavy: the command line uses it before Keras is loaded.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

__all__ = ["Progress", "ProgressBar", "as_progress"]


def _clock(seconds: float) -> str:
    """``75.2`` → ``"1:15"``, ``3725`` → ``"1:02:05"``."""
    seconds = int(max(seconds, 0.0))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Where a long computation reports how far it is.

    Args:
        enabled: Write anything at all; a disabled ``Progress`` costs nothing.
        stream: Text stream to write to (default: ``sys.stderr`` at the time of writing,
            so that pytest's capture and redirections see it).
        label: What the computation is about, written before every line
            (e.g. ``"mnist_aat++ under mnist-linf-pgd40"``).
        prefix: The program name written first (``"aatk"``).
        interval: Least seconds between two redraws of a bar on a terminal.
        log_every: Least seconds between two lines of a bar when ``stream`` is not a terminal.

    Examples:
        >>> import io
        >>> out = io.StringIO()
        >>> progress = Progress(stream=out, label="demo")
        >>> with progress.bar(4, what="evaluate", unit="examples") as bar:
        ...     bar.update(2, step="attack on the robust way")
        ...     bar.update(4)
        >>> print(out.getvalue().splitlines()[-1].split(" in ")[0])
        aatk: demo: evaluate: 4/4 examples
        >>> Progress(enabled=False).within("x").enabled
        False
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        label: str = "",
        prefix: str = "aatk",
        interval: float = 0.2,
        log_every: float = 30.0,
    ) -> None:
        self.enabled = bool(enabled)
        self.label = label
        self.prefix = prefix
        self.interval = interval
        self.log_every = log_every
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream if self._stream is not None else sys.stderr

    def within(self, label: str) -> Progress:
        """The same reporter with ``label`` added to its own (``"run: attack"``)."""
        joined = f"{self.label}: {label}" if self.label and label else (label or self.label)
        return Progress(enabled=self.enabled, stream=self._stream, label=joined, prefix=self.prefix,
                        interval=self.interval, log_every=self.log_every)

    def _head(self) -> str:
        parts = [part for part in (self.prefix, self.label) if part]
        return ": ".join(parts)

    def note(self, message: str) -> None:
        """Writes one line, e.g. the start of a phase that has no bar of its own."""
        if self.enabled:
            self.write_line(f"{self._head()}: {message}")

    def write_line(self, text: str) -> None:
        """Writes ``text`` as a line of its own (ending a bar being redrawn on a terminal)."""
        stream = self.stream
        stream.write(text + "\n")
        stream.flush()

    def bar(self, total: int | None, *, what: str, unit: str = "examples") -> ProgressBar:
        """A bar counting ``total`` ``unit`` (None: a count without a bar).

        Args:
            total: How many units the work has, if known.
            what: What is being done (``"evaluate"``, ``"inversion"``).
            unit: What is counted.
        """
        return ProgressBar(self, total=total, what=what, unit=unit)


class ProgressBar:
    """One bar of a [`Progress`][aatk.progress.Progress]: use it as a context manager.

    Call [`update`][aatk.progress.ProgressBar.update] with the number of units done so far
    (fractions allowed, for steps within a batch) and the current step's name.
    """

    _WIDTH = 30
    _FEW = 50  # a bar of at most this many units logs every new step

    def __init__(self, progress: Progress, *, total: int | None, what: str, unit: str) -> None:
        self.progress = progress
        self.total = total
        self.what = what
        self.unit = unit
        self.done = 0.0
        self.step: str | None = None
        self._restored = 0.0  # units taken from saved work (a resumed evaluation): they cost no time
        self._started = time.monotonic()
        self._last_draw = -float("inf")
        self._last_log = time.monotonic()
        self._drawn_width = 0
        self._logged_step: str | None = None
        self._closed = False
        if progress.enabled:
            self._interactive = bool(getattr(progress.stream, "isatty", lambda: False)())
            if not self._interactive:
                size = f"{total} {unit}" if total is not None else unit
                progress.write_line(f"{self._head()}: {size}")
        else:
            self._interactive = False

    def _head(self) -> str:
        return f"{self.progress._head()}: {self.what}"

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: object) -> None:
        self.close(finished=error is None)

    def _line(self) -> str:
        elapsed = time.monotonic() - self._started
        count = f"{int(self.done)}/{self.total}" if self.total is not None else f"{int(self.done)}"
        bar = ""
        if self.total:
            filled = min(int(self._WIDTH * self.done / self.total), self._WIDTH)
            bar = "[" + "=" * filled + (">" if filled < self._WIDTH else "") + "." * (self._WIDTH - filled - 1) + "] "
        parts = [f"{bar}{count} {self.unit}"]
        if self.step:
            parts.append(self.step)
        parts.append(f"{_clock(elapsed)} elapsed")
        worked = self.done - self._restored
        if self.total and worked > 0 and self.done < self.total:
            parts.append(f"ETA {_clock(elapsed / worked * (self.total - self.done))}")
        return f"{self._head()}: " + ", ".join(parts)

    def update(self, done: float, *, step: str | None = None) -> None:
        """Records that ``done`` units are finished and ``step`` is under way.

        Args:
            done: Units finished so far (not an increment).
            step: What is being done now (``"attack on the robust way"``); None keeps the last.
        """
        self.done = float(done)
        if step is not None:
            self.step = step
        if not self.progress.enabled or self._closed:
            return
        now = time.monotonic()
        if self._interactive:
            if now - self._last_draw >= self.progress.interval:
                self._draw(self._line())
                self._last_draw = now
        else:
            new_step = self.step is not None and self.step != self._logged_step
            if now - self._last_log >= self.progress.log_every or (
                new_step and self.total is not None and self.total <= self._FEW
            ):
                self.progress.write_line(self._line())
                self._last_log, self._logged_step = now, self.step

    def restore(self, done: float, *, step: str | None = None) -> None:
        """Like [`update`][aatk.progress.ProgressBar.update], for units that were finished earlier
        (read back from a checkpoint), so that the estimated time left counts only the work
        done now.

        Args:
            done: Units finished so far (not an increment).
            step: What is being done now; None keeps the last.
        """
        self._restored += max(float(done) - self.done, 0.0)
        self.update(done, step=step)

    def _draw(self, text: str) -> None:
        stream = self.progress.stream
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, OSError, ValueError):  # not a real terminal (io.UnsupportedOperation is both)
            columns = None
        if columns:
            text = text[: max(columns - 1, 20)]  # one line: a carriage return cannot undo a wrapped line
        stream.write("\r" + text + " " * max(self._drawn_width - len(text), 0))
        stream.flush()
        self._drawn_width = len(text)

    def close(self, *, finished: bool = True) -> None:
        """Ends the bar with a last line: the count and the time taken (or where it stopped)."""
        if self._closed:
            return
        self._closed = True
        if not self.progress.enabled:
            return
        elapsed = _clock(time.monotonic() - self._started)
        count = f"{int(self.done)}/{self.total}" if self.total is not None else f"{int(self.done)}"
        text = (f"{self._head()}: {count} {self.unit} in {elapsed}" if finished
                else f"{self._head()}: stopped at {count} {self.unit} after {elapsed}")
        if self._interactive:
            self._draw(text)
            self.progress.stream.write("\n")
            self.progress.stream.flush()
        else:
            self.progress.write_line(text)


def as_progress(progress: bool | Progress | None) -> Progress:
    """A [`Progress`][aatk.progress.Progress] from a function's ``progress`` argument.

    ``True`` → a bar on standard error; ``False`` or None → silent; a ``Progress`` as it is.

    Raises:
        ValueError: On anything else.

    Examples:
        >>> as_progress(False).enabled, as_progress(True).enabled
        (False, True)
    """
    if isinstance(progress, Progress):
        return progress
    if progress is None or isinstance(progress, bool):
        return Progress(enabled=bool(progress))
    raise ValueError(f"progress must be True, False or an aatk.progress.Progress, got {type(progress).__name__}")
