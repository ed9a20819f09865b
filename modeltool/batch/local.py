"""The local executor: up to N job processes side by side on this machine, planned by memory.

Each job's expected peak (`Job.estimate`: measured on an earlier run, else guessed from the source's
size) is counted against a memory budget: a job starts when a worker is free and its estimate fits
beside those already running; the first job that does not fit waits for memory, while smaller ones
behind it may start. A job always starts when nothing else runs, so none waits forever. This pool is
the only scheduler modeltool has; beyond one machine, Ray's does the work (`ray_executor`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from modeltool.batch.isolated import POLL_S, IsolatedJob
from modeltool.batch.jobs import CRASHED, Job, JobResult


def next_startable(pending: list[Job], running: list[Job], budget: int) -> int | None:
    """Index of the first pending job whose estimate fits in `budget` beside `running`, else None."""
    used = sum(j.estimate for j in running)
    for i, job in enumerate(pending):
        if not running or used + job.estimate <= budget:
            return i
    return None


def run_local(
    jobs: list[Job], out: str, workers: int, budget: int,
    on_start: Callable[[Job], None] | None = None, tick: Callable[[], None] | None = None,
) -> Iterator[JobResult]:  # fmt: skip
    """Run `jobs` with at most `workers` processes and `budget` bytes of expected peaks at once; yield each
    result as its job ends. Closing the generator (an interrupt) kills the jobs still running."""
    pending = list(jobs)
    running: list[IsolatedJob] = []
    try:
        while pending or running:
            while len(running) < max(workers, 1):
                index = next_startable(pending, [p.job for p in running], budget)
                if index is None:
                    break
                proc = IsolatedJob(pending.pop(index), out)
                proc.start()
                running.append(proc)
                if on_start:
                    on_start(proc.job)
            time.sleep(POLL_S)
            for proc in list(running):
                result = proc.poll()
                if result is not None:
                    running.remove(proc)
                    yield result
            if tick:
                tick()
    finally:
        for proc in running:
            proc.kill(CRASHED, "interrupted")
