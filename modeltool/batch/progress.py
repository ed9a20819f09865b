"""The live progress line of a batch on a terminal: done, failed, running, remaining and an ETA.

One line, rewritten in place (carriage return), at most a few times a second; nothing when the
stream is not a terminal (CI logs get the final report instead). The ETA is the remaining jobs over
the rate at which this run has finished jobs so far (cached ones excluded: they cost nothing).
"""

from __future__ import annotations

import time
from typing import TextIO

from modeltool.batch.jobs import Job, JobResult


class ProgressLine:
    """What the run reports to as it goes; draws on `stream` only when it is a terminal."""

    def __init__(self, stream: TextIO | None, min_interval: float = 0.5) -> None:
        self.stream = stream if stream is not None and stream.isatty() else None
        self.min_interval = min_interval
        self.total = self.done = self.failed = self.cached = self.running = 0
        self.started_at = time.monotonic()
        self._drawn_at = 0.0
        self._width = 0

    def start(self, total: int, cached: int) -> None:
        self.total, self.cached, self.done = total, cached, cached
        self.started_at = time.monotonic()
        self._draw(force=True)

    def job_started(self, job: Job) -> None:
        self.running += 1
        self._draw()

    def job_finished(self, result: JobResult) -> None:
        self.done += 1
        self.running = max(self.running - 1, 0)
        self.failed += 0 if result.passed else 1
        self._draw(force=True)

    def tick(self) -> None:
        self._draw()

    def eta(self) -> float | None:
        """Seconds left at this run's rate so far; None before the first job of this run ends."""
        ran = self.done - self.cached
        remaining = self.total - self.done
        if ran <= 0:
            return None
        return remaining * (time.monotonic() - self.started_at) / ran

    def text(self) -> str:
        eta = self.eta()
        remaining = self.total - self.done
        left = "-" if eta is None else _clock(eta)
        running = f", {self.running} running" if self.running else ""
        cached = f" ({self.cached} cached)" if self.cached else ""
        return (f"[batch] {self.done}/{self.total} done{cached}, {self.failed} failed{running}, {remaining} remaining, "
                f"elapsed {_clock(time.monotonic() - self.started_at)}, ETA {left}")  # fmt: skip

    def _draw(self, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < self.min_interval:
            return
        self._drawn_at = now
        line = self.text()
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        if self.stream is not None and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
