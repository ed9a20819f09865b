"""One job in a process of its own, within a time limit and a memory limit.

The job runs `python -m modeltool.batch.worker` in a new session (its own process group), with its
output going to the job's log under --out. The parent polls it: past its time limit, or when the
resident memory of its processes passes its memory limit, the whole group is killed with SIGKILL and
the job fails with that reason. A process that dies by itself (a segfault in native code, the system's
OOM killer) fails its job with the signal named. Whatever happens, the run goes on.

Memory is limited by polling the resident set size (`/proc/<pid>/status`, the process and its
children, every `POLL_S`) rather than by `RLIMIT_AS`: TensorFlow and XLA reserve far more address space
than they ever touch, so an address-space limit kills healthy conversions at import. The peak is
`max(polled, ru_maxrss)` from `wait4`, so a short spike between two polls is still counted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Any

from modeltool.batch.jobs import CRASHED, INTERNAL, OUT_OF_MEMORY, TIMEOUT, Job, JobResult
from modeltool.sizes import format_size

POLL_S = 0.1


class IsolatedJob:
    """A job's process: `start()`, then `poll()` until it returns the result; `kill()` to stop it."""

    def __init__(self, job: Job, out: str) -> None:
        self.job = job
        self.out = out
        self.peak = 0
        self.started = 0.0
        self._proc: subprocess.Popen | None = None
        self._tmp = ""
        self._log: Any = None

    def start(self) -> None:
        """Start the job's process (its spec and result go through a private temporary folder)."""
        self._tmp = tempfile.mkdtemp(prefix="modeltool-job-")
        spec = {"job": asdict(self.job), "out": self.out, "result": os.path.join(self._tmp, "result.json")}
        spec_path = os.path.join(self._tmp, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as fh:
            json.dump(spec, fh)
        log_path = os.path.join(self.out, self.job.log)
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in _finish
        self.started = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "modeltool.batch.worker", spec_path], stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, env=_job_env(self.job), start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else 0

    def poll(self) -> JobResult | None:
        """The result once the process has ended (or was killed here at a limit), else None."""
        assert self._proc is not None, "start() first"
        if os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            _kill_group(self._proc.pid)  # children it left behind go with it (its pid is not reused until reaped)
            _, status, usage = os.wait4(self._proc.pid, 0)
            return self._finish(status, usage.ru_maxrss * 1024)
        elapsed = time.monotonic() - self.started
        if self.job.timeout and elapsed > self.job.timeout:
            reason = f"timeout: killed after {elapsed:.0f} s (limit {self.job.timeout:g} s)"
            return self.kill(TIMEOUT, reason, limit=self.job.timeout)
        rss = tree_rss(self._proc.pid)
        self.peak = max(self.peak, rss)
        if self.job.max_memory and rss > self.job.max_memory:
            reason = f"out of memory: killed at {format_size(rss)} resident, over the limit of " + format_size(
                self.job.max_memory
            )
            return self.kill(OUT_OF_MEMORY, reason, limit=self.job.max_memory)
        return None

    def kill(self, status: str = CRASHED, reason: str = "interrupted", limit: float | None = None) -> JobResult:
        """Kill the job's whole process group now; its result says `status` and `reason` (and the
        `limit` it was killed at, when it was)."""
        assert self._proc is not None
        _kill_group(self._proc.pid)
        _, status_code, usage = os.wait4(self._proc.pid, 0)
        result = self._finish(status_code, usage.ru_maxrss * 1024, killed=(status, reason))
        if limit is not None:
            result.details["limit"] = limit
        return result

    def _finish(self, status_code: int, maxrss: int, killed: tuple[str, str] | None = None) -> JobResult:
        seconds = time.monotonic() - self.started
        self.peak = max(self.peak, maxrss)
        self._proc.returncode = os.waitstatus_to_exitcode(status_code)  # type: ignore[union-attr]
        self._log.close()
        data = _read_result(os.path.join(self._tmp, "result.json"))
        shutil.rmtree(self._tmp, ignore_errors=True)
        base = {"job": self.job.id, "model": self.job.model, "target": self.job.target, "seconds": round(seconds, 3),
                "peak_memory": self.peak, "log": self.job.log, "node": socket.gethostname()}  # fmt: skip
        if killed:
            return JobResult(**base, status=killed[0], reason=killed[1])
        if data is None:
            status, reason = _death(self._proc.returncode)  # type: ignore[union-attr]
            return JobResult(**base, status=status, reason=reason)
        return JobResult(**{**base, **data})


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _death(returncode: int) -> tuple[str, str]:
    """(status, reason) of a job process that ended without writing a result."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if returncode == -signal.SIGKILL:
            return OUT_OF_MEMORY, "killed by SIGKILL without a result (the system's out-of-memory killer?)"
        return CRASHED, f"crashed: the job's process died of {name}"
    if returncode == 0:
        return INTERNAL, "the job's process exited without a result (see its log)"
    return CRASHED, f"crashed: the job's process exited with status {returncode} without a result (see its log)"


def _read_result(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _job_env(job: Job) -> dict[str, str]:
    """The parent's environment, quiet TensorFlow, and the job's share of the cores."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    if job.threads:
        n = str(job.threads)
        env.update(OMP_NUM_THREADS=n, TF_NUM_INTRAOP_THREADS=n, TF_NUM_INTEROP_THREADS=n)
    return env


def run_isolated(job: Job, out: str) -> JobResult:
    """Run `job` to its end in its own process (what a Ray task does on its node)."""
    proc = IsolatedJob(job, out)
    proc.start()
    try:
        while (result := proc.poll()) is None:
            time.sleep(POLL_S)
    except BaseException:
        proc.kill(CRASHED, "interrupted")
        raise
    return result


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants (0 once gone); Linux `/proc`."""
    total = 0
    stack = [pid]
    seen: set[int] = set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss(p)
        stack += _children(p)
    return total


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def memory_available() -> int:
    """Bytes of memory this machine can give without swapping (MemAvailable), else its total memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30
