"""One batch run: jobs from the models, cache lookups, an executor, results recorded as they arrive.

Every job's result goes into the cache the moment it ends, so a run that is interrupted (Ctrl-C, a
killed CI runner) resumes where it stopped: the next identical run takes what is done from the cache
and runs the rest. `--force` runs everything again.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace

from modeltool.batch.cache import Cache, library_versions
from modeltool.batch.isolated import memory_available
from modeltool.batch.jobs import Job, JobResult, make_jobs
from modeltool.batch.manifest import ModelEntry, Skipped
from modeltool.batch.progress import ProgressLine
from modeltool.batch.report import BatchReport
from modeltool.errors import UsageError

EXECUTORS = ("local", "ray")
#: a job never measured is expected to peak at this much plus GUESS_FACTOR times its source's size
#: (TensorFlow, Keras and onnxruntime loaded: ~0.7 GB; ResNet50's 98 MB peaked at 1.6 GB, VGG16's 553 MB at 3.8 GB)
GUESS_BASE = 700 << 20
GUESS_FACTOR = 9
REPORT_FILE = "batch-report.json"


@dataclass(frozen=True)
class BatchSettings:
    """How a batch runs (what it runs is the list of ModelEntry)."""

    out: str
    jobs: int | None = None  # local workers; None: the cores this process may use
    timeout: float | None = 1800.0  # seconds per job
    max_memory: int | None = None  # bytes per job; None: the memory available when the run starts (local)
    memory_budget: int | None = None  # bytes of expected peaks side by side (local); None: memory available
    force: bool = False  # run every job again, cached or not
    executor: str = "local"
    ray_address: str | None = None
    ray_artifacts: str = "auto"  # see modeltool.batch.ray_executor.ARTIFACTS
    cache: str | None = None  # None: <out>/.modeltool-cache
    #: CPUs (and TensorFlow/onnxruntime threads) per job; None: cores / --jobs locally, 1 per Ray task
    cpus_per_job: int | None = None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_batch(
    entries: list[ModelEntry], settings: BatchSettings, skipped: list[Skipped] | None = None,
    progress: ProgressLine | None = None,
) -> BatchReport:  # fmt: skip
    """Run every (model, target) job of `entries`; the report lists them in that order."""
    if settings.executor not in EXECUTORS:
        raise UsageError(f"--executor {settings.executor}: choose from {', '.join(EXECUTORS)}")
    if not entries:
        raise UsageError("no models to convert" + (f" ({len(skipped)} file(s) skipped: no whole model)"
                                                   if skipped else ""))  # fmt: skip
    out = os.path.abspath(settings.out)
    os.makedirs(out, exist_ok=True)
    progress = progress or ProgressLine(None)
    start = time.monotonic()
    cache = Cache(settings.cache or os.path.join(out, ".modeltool-cache"))
    versions = library_versions()
    available = memory_available()
    workers = settings.jobs or cores()
    local = settings.executor == "local"
    max_memory = settings.max_memory or (available if local else None)
    threads = settings.cpus_per_job or (max(1, cores() // workers) if local else 1)
    jobs = [_planned(j, cache, versions, threads) for j in make_jobs(entries, settings.timeout, max_memory)]
    results: dict[str, JobResult] = {}
    if not settings.force:
        results = {j.id: hit for j in jobs if (hit := cache.get(j, out)) is not None}
    pending = [j for j in jobs if j.id not in results]
    progress.start(len(jobs), len(results))
    if local:
        from modeltool.batch.local import run_local

        stream = run_local(pending, out, workers, settings.memory_budget or available, progress.job_started,
                           progress.tick)  # fmt: skip
    else:
        from modeltool.batch.ray_executor import run_ray

        stream = run_ray(pending, out, settings.ray_address, progress.tick, settings.ray_artifacts)
    by_id = {j.id: j for j in jobs}
    try:
        for result in stream if pending else ():
            results[result.job] = result
            cache.put(by_id[result.job], result)
            cache.remember_peak(by_id[result.job], result)
            progress.job_finished(result)
    finally:
        stream.close()
        cache.save()
        progress.close()
    report = BatchReport([results[j.id] for j in jobs], list(skipped or ()), settings.executor, out,
                         round(time.monotonic() - start, 3), versions)  # fmt: skip
    with open(os.path.join(out, REPORT_FILE), "w", encoding="utf-8") as fh:
        json.dump(report.to_dict(), fh, indent=2, default=str)
    return report


def _planned(job: Job, cache: Cache, versions: dict, threads: int) -> Job:
    """The job with its cache key, its expected peak (measured before, else guessed; never above its
    limit, where it would be killed) and its threads."""
    estimate = cache.peak(job) or GUESS_BASE + GUESS_FACTOR * _size(job.source)
    if job.max_memory:
        estimate = min(estimate, job.max_memory)
    return replace(job, key=cache.job_key(job, versions), estimate=int(estimate), threads=threads)


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for folder, _, names in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, n)) for n in names)
    return total
