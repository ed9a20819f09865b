"""One (model, target) job and the result it ends with, as plain data.

Jobs travel to other processes (the job's own process, a Ray worker on another node), so they hold
only JSON values: absolute paths, ConvertOptions fields as JSON, limits in seconds and bytes. Where a
job writes is fixed by its model id and target, relative to the run's `--out`, so a rerun, a resumed
run and a Ray worker writing to shared storage all find the same files.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any

from modeltool.batch.manifest import ModelEntry
from modeltool.options import ConvertOptions
from modeltool.targets import TARGETS, Target

#: how a job ends; the first two passed
VERIFIED = "verified"  # written and checked (run beside the source, or read back for Keras targets)
CONVERTED = "converted"  # written, not verified (--no-verify, or a Flex model no interpreter here runs)
MISMATCH = "mismatch"  # the written file computes other numbers than the source: nothing kept
#: written, its outputs agree with the source's but prove nothing (about zero, saturated, constant)
INCONCLUSIVE = "inconclusive"
ERROR = "error"  # modeltool refused the input or the options (an unsupported source, a bad file)
TIMEOUT = "timeout"  # killed at its time limit
OUT_OF_MEMORY = "out-of-memory"  # killed at its memory limit (or by the system's OOM killer)
CRASHED = "crashed"  # its process died without a result (a signal, an abort in native code)
INTERNAL = "internal-error"  # an exception modeltool did not expect: a bug to report
PASSED = (VERIFIED, CONVERTED)
#: outcomes that the same input, options and versions give again: cached like successes
REPEATABLE = (VERIFIED, CONVERTED, MISMATCH, INCONCLUSIVE, ERROR)
#: statuses that are a verdict on the numbers (a JUnit <failure>); other failures are <error>s
CHECK_FAILURES = (MISMATCH, INCONCLUSIVE)
#: kills at a limit: cached with the limit (`details["limit"]`), so a rerun under the same or a lower
#: limit does not wait for the same end again, while a raised limit runs the job again. A crash, an
#: internal error or a kill by the system may depend on the machine and its load: such a job runs again.
KILLED_AT_LIMIT = (TIMEOUT, OUT_OF_MEMORY)


@dataclass(frozen=True)
class Job:
    """Convert one model to one target, in a process of its own, within its limits."""

    id: str  # "<model id> -> <target>"
    model: str  # the model's id
    source: str  # absolute path of the model
    target: str
    options: dict[str, Any]  # ConvertOptions fields (JSON values) that differ from the defaults
    artifact: str  # where the result goes, relative to --out
    timeout: float | None = None  # seconds
    max_memory: int | None = None  # bytes of resident memory
    key: str = ""  # cache key (content of the source, target, options, versions)
    estimate: int = 0  # expected peak resident memory in bytes (measured before, or guessed)
    threads: int | None = None  # TensorFlow/onnxruntime threads in the job's process

    @property
    def report_json(self) -> str:
        return self.artifact + ".report.json"

    @property
    def report_text(self) -> str:
        return self.artifact + ".report.txt"

    @property
    def log(self) -> str:
        return self.artifact + ".log"

    def convert_options(self) -> ConvertOptions:
        """The job's options as the ConvertOptions `convert` takes (the job owns its destination)."""
        return options_from_json(self.options, to=self.target, force=True)

    @property
    def needs_gpu(self) -> bool:
        return self.options.get("device") == "cuda"


@dataclass
class JobResult:
    """How a job ended. Paths are relative to --out."""

    job: str
    model: str
    target: str
    status: str
    reason: str = ""  # one line: why it failed, or what a pass should know (a warning)
    seconds: float = 0.0  # wall time of the job's process
    peak_memory: int = 0  # bytes: the highest resident memory measured
    artifact: str | None = None  # the written file or folder
    report: str | None = None  # the ConvertReport as JSON (text beside it, `.report.txt`)
    log: str | None = None  # the job process's output
    cached: bool = False  # taken from the cache, not run in this run
    node: str = ""  # host that ran it
    details: dict[str, Any] = field(default_factory=dict)  # sizes, timings per step, verification summary

    @property
    def passed(self) -> bool:
        return self.status in PASSED

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobResult:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    def outcome(self) -> dict[str, Any]:
        """What must be the same whichever executor or machine ran the job: its status, reason and each
        output's verdict (no times, hosts, cache flags, nor error figures that thread counts may move
        in the last bits; a SavedModel's outputs may come in any order)."""
        v = self.details.get("verification") or {}
        verdicts = sorted((o["name"], o["passed"], o["verdict"]) for o in v.get("outputs", []))
        stable = self.status == ERROR  # modeltool's own message; other reasons hold measured figures
        return {"job": self.job, "status": self.status, "reason": self.reason if stable else None,
                "verification": [list(x) for x in verdicts] if v else None}  # fmt: skip


def artifact_path(model: str, target: str) -> str:
    """`<model id>/<stem><suffix>` (a SavedModel: `<stem>_savedmodel`), relative to --out. The model's
    own folder keeps `conv.keras` and `conv.h5` of one zoo apart."""
    stem = posixpath.basename(model).split(".")[0] or "model"
    spec = TARGETS[Target(target)]
    name = stem + spec.suffixes[0] if spec.suffixes else f"{stem}_{target}"
    return posixpath.join(model, name)


def make_jobs(entries: list[ModelEntry], timeout: float | None, max_memory: int | None) -> list[Job]:
    """One job per model and target, in the order given; a model's own limits beat the run's."""
    return [
        Job(f"{e.id} -> {t}", e.id, e.path, t, dict(e.options), artifact_path(e.id, t),
            e.timeout if e.timeout is not None else timeout,
            e.max_memory if e.max_memory is not None else max_memory)
        for e in entries for t in e.targets
    ]  # fmt: skip


def options_from_json(values: dict[str, Any], **extra: Any) -> ConvertOptions:
    """ConvertOptions from JSON values (lists back to the tuples the dataclass holds)."""
    kwargs = {**values, **extra}
    if "input_shapes" in kwargs:
        kwargs["input_shapes"] = {k: tuple(v) for k, v in kwargs["input_shapes"].items()}
    for key in ("inputs_as_nchw", "outputs_as_nchw"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return ConvertOptions(**kwargs)
