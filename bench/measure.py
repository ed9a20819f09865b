"""Run one command in a child process and measure it: wall time, peak RSS (the child's own
`ru_maxrss` from `wait4`), exit code and output. Shared by the conversion benchmarks."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass


@dataclass
class Run:
    rc: int
    seconds: float
    peak_mb: float
    stdout: str
    stderr: str

    def last_error(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.strip() and not ln.startswith(("I0000", "W0000", "E0000"))]
        return lines[-1][:160] if lines else f"exit {self.rc}"


def run(cmd: list[str], timeout: float = 1800, env: dict | None = None) -> Run:
    """`cmd` to completion (killed after `timeout`)."""
    environ = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=environ)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(proc.returncode, seconds, usage.ru_maxrss / 1024, out.read(), err.read())


def publish(table: str, out: str | None) -> None:
    """Print a finished table, and keep it in `out` (the raw results beside the README's copy)."""
    print(table)
    if out:
        from pathlib import Path

        Path(out).write_text(table + "\n")
