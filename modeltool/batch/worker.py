"""The process one job runs in: `python -m modeltool.batch.worker SPEC.json`.

It runs the real conversion (`modeltool.convert.convert`, verification included) in this process and
writes three things: the ConvertReport as JSON and as text beside the artifact under --out, and the
job's result where the spec says. Anything that goes wrong inside the conversion becomes the job's
status and one-line reason; only a death of the process itself (a signal, a kill at a limit) leaves no
result, and the parent (`modeltool.batch.isolated`) says what happened then.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import traceback
from typing import Any

from modeltool.batch.jobs import CONVERTED, ERROR, INCONCLUSIVE, INTERNAL, MISMATCH, OUT_OF_MEMORY, VERIFIED, Job


def run_job(job: Job, out: str) -> dict[str, Any]:
    """Convert and verify one job's model into `out`; its status, reason and details as JSON values."""
    from modeltool.errors import CheckFailed, ModelToolError

    dst = os.path.join(out, job.artifact)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    result: dict[str, Any] = {"node": socket.gethostname()}
    try:
        from modeltool.convert import convert

        report = convert(job.source, dst, job.convert_options())
    except CheckFailed as exc:
        return {**result, "status": MISMATCH, "reason": _relative(str(exc), out)}
    except ModelToolError as exc:
        return {**result, "status": ERROR, "reason": _relative(str(exc), out)}
    except MemoryError:
        return {**result, "status": OUT_OF_MEMORY, "reason": "out of memory: MemoryError in the conversion"}
    except Exception as exc:  # noqa: BLE001 - a bug in modeltool: this job's failure, traceback in its log
        traceback.print_exc()
        return {
            **result,
            "status": INTERNAL,
            "reason": f"internal error (a bug in modeltool): {type(exc).__name__}: {_relative(str(exc), out)}",
        }
    _write(os.path.join(out, job.report_json), json.dumps(report.to_dict(), indent=2, default=str))
    _write(os.path.join(out, job.report_text), report.render() + "\n")
    result.update(report=job.report_json, details=_details(report))
    if not report.passed:
        return {**result, "status": MISMATCH, "reason": _mismatch(report)}
    if report.verdict == "INCONCLUSIVE":  # the file is kept, as convert keeps it; the job did not pass
        why = "; ".join(report.verification.inconclusive)
        return {**result, "status": INCONCLUSIVE, "artifact": job.artifact, "reason": f"inconclusive: {why}"}
    if report.verification is None and _runnable(job.target):  # Keras targets are always read back
        why = "; ".join(report.warnings) if report.warnings else "not verified (--no-verify)"
        return {**result, "status": CONVERTED, "artifact": job.artifact, "reason": _relative(why, out)}
    warnings = "; ".join(report.warnings)
    return {**result, "status": VERIFIED, "artifact": job.artifact, "reason": _relative(warnings, out)}


def _runnable(target: str) -> bool:
    from modeltool.targets import TARGETS, Target

    return TARGETS[Target(target)].runnable


def _details(report: Any) -> dict[str, Any]:
    """What the batch report shows of a conversion; the whole ConvertReport is in the job's report file."""
    verification = None
    if report.verification is not None:
        v = report.verification
        verification = {
            "passed": v.passed,
            "reference": v.reference_kind,
            "outputs": [{"name": o.name, "passed": o.passed, "verdict": o.verdict} for o in v.outputs],
            "max_abs": max((o.max_abs for o in v.outputs if o.max_abs is not None), default=None),
        }
    return {"source_format": report.source_format, "size_before": report.size_before,
            "size_after": report.size_after, "timings": {k: round(v, 3) for k, v in report.timings.items()},
            "verification": verification}  # fmt: skip


def _mismatch(report: Any) -> str:
    v = report.verification
    if v is None:
        return "not written"
    failing = [f"{o.name}: {o.verdict}" for o in v.outputs if not o.passed]
    return "verification failed: " + "; ".join(list(v.problems) + failing)[:400]


def _relative(text: str, out: str) -> str:
    """One line, with paths under --out written relative to it (the same on every node)."""
    root = os.path.abspath(out).rstrip(os.sep) + os.sep
    return " ".join(text.replace(root, "").split())[:500]


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _quiet() -> None:
    """Library chatter goes to the job's log at most; warnings are not the job's result."""
    import logging
    import warnings

    if not os.environ.get("MODELTOOL_DEBUG"):
        warnings.filterwarnings("ignore")
        logging.getLogger("absl").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Read the spec, run the job, write its result; exit 0 whenever a result was written."""
    args = sys.argv[1:] if argv is None else argv
    with open(args[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    _quiet()
    job = Job(**spec["job"])
    result = run_job(job, spec["out"])
    _write(spec["result"], json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
