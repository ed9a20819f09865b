"""`modeltool batch`: whole model zoos converted and verified, one isolated process per (model, target) job.

The parts, in the order a run uses them:

- `manifest`: which models (found under folders by content, or listed in a `models.yaml`) and, per model,
  the targets, convert options and limits;
- `jobs`: one (model, target) job as plain data, and the result a job ends with;
- `cache`: content hashes of sources and the results of finished jobs, so a rerun skips what is done;
- `isolated` / `worker`: one job in its own process, killed on its time or memory limit (a crash, hang
  or out-of-memory is that job's failure, never the run's);
- `local` (a memory-aware pool of processes on this machine) and `ray_executor` (the same jobs as Ray
  tasks on a cluster): the two executors;
- `run`: the run itself (cache lookups, an executor, results recorded as they arrive);
- `report` and `progress`: the report (text table, JSON, JUnit, HTML) and the live progress line.

The driver never imports TensorFlow: only the job processes do.
"""

from __future__ import annotations

from modeltool.batch.jobs import Job, JobResult
from modeltool.batch.manifest import ModelEntry, discover_models, load_manifest
from modeltool.batch.report import BatchReport
from modeltool.batch.run import BatchSettings, run_batch

__all__ = [
    "BatchReport",
    "BatchSettings",
    "Job",
    "JobResult",
    "ModelEntry",
    "discover_models",
    "load_manifest",
    "run_batch",
]
