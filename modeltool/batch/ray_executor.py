"""The Ray executor: the same jobs as Ray tasks, scheduled by Ray on one machine or a cluster.

Each job is one task with resource requests (one CPU, its expected peak as `memory`, one GPU when it
verifies on CUDA), so Ray's scheduler places it; modeltool schedules nothing here. On its node a task
runs the job exactly as the local executor does (`isolated.run_isolated`: its own process, its time
and memory limits), so a crash, hang or out-of-memory is still that job's failure.

Artifacts: when the node sees the run's --out (shared storage: the driver leaves a token file there
and the task finds it), the job writes there directly; otherwise it writes to a temporary folder on
its node and the files travel back through Ray's object store, and the driver writes them under
--out. The sources (and the files options name) must be readable on every node at the same path.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from modeltool.batch.isolated import run_isolated
from modeltool.batch.jobs import CRASHED, ERROR, INTERNAL, OUT_OF_MEMORY, Job, JobResult
from modeltool.errors import MissingDependencyError, UsageError

TOKEN_FILE = ".modeltool-batch-token"
#: how artifacts reach --out: "auto" (shared storage when the node sees the token, else shipped), "shared", "ship"
ARTIFACTS = ("auto", "shared", "ship")


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            f"ray is needed for --executor ray but is not installed ({exc}); run: pip install 'modeltool-tf[ray]'"
        ) from exc
    return ray


def node_job(job: Job, out: str, token: str, artifacts: str = "auto") -> dict[str, Any]:
    """The task body, on whichever node Ray chose: run the job isolated; return its result, and its files
    when --out is not shared with the driver."""
    shared = artifacts == "shared" or (artifacts == "auto" and _sees_token(out, token))
    if shared:
        return {"result": run_isolated(job, out).to_dict(), "files": None}
    local = tempfile.mkdtemp(prefix="modeltool-batch-")
    try:
        result = run_isolated(job, local)
        files = {}
        for folder, _, names in os.walk(local):
            for name in names:
                full = os.path.join(folder, name)
                with open(full, "rb") as fh:
                    files[os.path.relpath(full, local).replace(os.sep, "/")] = fh.read()
        return {"result": result.to_dict(), "files": files}
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _sees_token(out: str, token: str) -> bool:
    try:
        with open(os.path.join(out, TOKEN_FILE), encoding="utf-8") as fh:
            return fh.read().strip() == token
    except OSError:
        return False


def run_ray(
    jobs: list[Job], out: str, address: str | None = None, tick: Callable[[], None] | None = None,
    artifacts: str = "auto",
) -> Iterator[JobResult]:  # fmt: skip
    """Submit every job as a Ray task and yield each result as it ends. Connects to `address` (or
    RAY_ADDRESS), starts a local Ray instance when neither is given, or uses the Ray already
    initialized in this process; a Ray started here is shut down at the end."""
    if artifacts not in ARTIFACTS:
        raise UsageError(f"artifacts={artifacts!r}: choose from {', '.join(ARTIFACTS)}")
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        _init(ray, address)
    token = uuid.uuid4().hex
    token_path = os.path.join(out, TOKEN_FILE)
    with open(token_path, "w", encoding="utf-8") as fh:
        fh.write(token)
    refs: dict[Any, Job] = {}
    try:
        largest, gpus = _cluster(ray)
        task = ray.remote(node_job)
        for job in jobs:
            if job.needs_gpu and not gpus:
                yield _failed(job, ERROR, "--device cuda: the Ray cluster has no GPU")
                continue
            options = {"num_cpus": job.threads or 1, "num_gpus": 1 if job.needs_gpu else 0,
                       "retry_exceptions": False}  # fmt: skip
            if job.estimate:
                options["memory"] = min(job.estimate, largest) if largest else job.estimate
            refs[task.options(**options).remote(job, out, token, artifacts)] = job
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
            for ref in done:
                yield _collect(ray, ref, refs.pop(ref), out)
            if tick:
                tick()
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        try:
            os.remove(token_path)
        except OSError:
            pass
        if started_here:
            ray.shutdown()


def _init(ray: Any, address: str | None) -> None:
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address or os.environ.get("RAY_ADDRESS"):
        kwargs["address"] = address or os.environ["RAY_ADDRESS"]
    else:
        kwargs["include_dashboard"] = False
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UsageError(
            f"--ray-address {kwargs.get('address', '(local)')}: cannot start or reach Ray ({exc})"
        ) from exc


def _cluster(ray: Any) -> tuple[int, bool]:
    """(the largest memory one node offers, in bytes; whether any node has a GPU). A request above
    the largest node's memory could never be placed, so requests are capped there."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    largest = max((int(n.get("Resources", {}).get("memory", 0)) for n in nodes), default=0)
    return largest, ray.cluster_resources().get("GPU", 0) > 0


def _collect(ray: Any, ref: Any, job: Job, out: str) -> JobResult:
    """A finished task's result, its shipped files written under --out; a task Ray itself lost (its
    worker or node died, Ray's memory monitor killed it) is that job's failure."""
    try:
        payload = ray.get(ref)
    except ray.exceptions.OutOfMemoryError as exc:
        return _failed(job, OUT_OF_MEMORY, f"out of memory: Ray's memory monitor killed the task ({_line(exc)})")
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.TaskCancelledError) as exc:
        return _failed(job, CRASHED, f"crashed: the Ray task was lost ({type(exc).__name__}: {_line(exc)})")
    except ray.exceptions.RayError as exc:
        return _failed(job, INTERNAL, f"internal error in the Ray task: {type(exc).__name__}: {_line(exc)}")
    for rel, data in (payload.get("files") or {}).items():
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return JobResult.from_dict(payload["result"])


def _failed(job: Job, status: str, reason: str) -> JobResult:
    return JobResult(job.id, job.model, job.target, status, reason)


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
