"""Benchmark: the keras.applications sweep as one `modeltool batch` call with a manifest.

    python bench/bench_batch.py [--models MobileNetV2,ResNet50 | --all] [--size 64] [--out results.md]

The models are built as `sweep_applications.py` builds them (`weights=None`, 64x64 input, VGG16/19 at
224x224), saved as `.keras` and listed in one manifest with targets ONNX and TFLite (`batch: 1`, as
the sweep converts them). Two deliberately broken jobs are listed too, both the custom layer of
`fixtures/keras3/custom_layer.keras` handed another `custom_objects` module (no `--unsafe`): one
sleeps while it builds (killed by its `timeout`), one allocates memory (killed by its `max_memory`).
The same manifest then runs, each as one command in a fresh process:

1. the local executor, sequential (`--jobs 1`);
2. the local executor, `--jobs 2`;
3. the Ray executor (a local Ray instance started by the command, two CPUs here);
4. run 2 again: everything from the cache.

Reported: wall time of each, that the three executions give the same outcome per job, and the per-job
table of run 2 (status, time, peak memory). The default set is six small applications, since this
machine has two cores shared with other work; `--all` is the whole sweep, and `--runs par,ray,cache`
picks runs (the sequential one of the whole sweep takes about an hour here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import run  # noqa: E402
from sweep_applications import applications, build_zoo  # noqa: E402

from modeltool.batch import JobResult  # noqa: E402  (first: a broken install fails before an hour of runs)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "MobileNet,MobileNetV2,MobileNetV3Small,EfficientNetB0,DenseNet121,ResNet50"
FAULTS = """
  - path: {custom}
    name: faults/hangs
    targets: [onnx]
    custom_objects: {hanging}
    timeout: 30
  - path: {custom}
    name: faults/hungry
    targets: [onnx]
    custom_objects: {hungry}
    max_memory: 1.5G
"""


def manifest(zoo: Path, names: list[str]) -> Path:
    lines = ["targets: [onnx, tflite]", "defaults: {batch: 1}", "models:"]
    lines += [f"  - path: {name}.keras" for name in names]
    faults = FAULTS.format(
        custom=ROOT / "fixtures/keras3/custom_layer.keras",
        hanging=ROOT / "tests/batch/hanging_layers.py",
        hungry=ROOT / "tests/batch/hungry_layers.py",
    )
    path = zoo / "models.yaml"
    path.write_text("\n".join(lines) + faults)
    return path


def outcomes(report: dict) -> list[dict]:
    return [JobResult.from_dict(j).outcome() for j in report["jobs"]]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=DEFAULT)
    parser.add_argument("--all", action="store_true", help="every keras.applications model (the whole sweep)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument(
        "--runs",
        default="seq,par,ray,cache",
        help="which runs, in order: seq (--jobs 1), par (--jobs 2), ray, cache (par again)",
    )
    parser.add_argument("--zoo", default=None, help="keep the built models here (reused by a later run)")
    parser.add_argument("--keep", default=None, help="the runs' output folders and JSON reports go here")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    names = applications() if args.all else args.models.split(",")
    py = sys.executable
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        zoo = Path(args.zoo or Path(tmp) / "zoo")
        zoo.mkdir(parents=True, exist_ok=True)
        built = list(build_zoo(names, args.size, zoo))
        listed = manifest(zoo, built)
        every = {"seq": ("local, sequential (--jobs 1)", ["--jobs", "1"], "seq"),
                 "par": ("local, --jobs 2", ["--jobs", "2"], "par"),
                 "ray": ("ray (local instance, 2 CPUs)", ["--executor", "ray"], "ray"),
                 "cache": ("local, --jobs 2, again (cache)", ["--jobs", "2"], "par")}  # fmt: skip
        runs = [every[r] for r in args.runs.split(",") if not (args.no_ray and r == "ray")]
        reports, rows = (
            {},
            ["| run | wall time | jobs | passed | failed | from the cache |", "|---|---|---|---|---|---|"],
        )
        for label, flags, out in runs:
            work = Path(args.keep or tmp)
            r = run([py, "-m", "modeltool", "batch", "--manifest", str(listed), "--out", str(work / out),
                     "--json", *flags], timeout=7200)  # fmt: skip
            (work / f"{out}-{len(reports)}.json").write_text(r.stdout)
            try:
                report = json.loads(r.stdout)
            except ValueError:
                print(f"{label}: exit {r.rc}: {r.last_error()}", file=sys.stderr)
                continue
            reports[label] = report
            c = report["counts"]
            rows.append(
                f"| {label} | {r.seconds:.1f} s | {c['jobs']} | {c['passed']} | {c['failed']} | {c['cached']} |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
    labels = list(reports)
    same = all(outcomes(reports[label]) == outcomes(reports[labels[0]]) for label in labels[1:])
    jobs = ["| job | status | time | peak memory | reason |", "|---|---|---|---|---|"]
    par = reports.get("local, --jobs 2") or next(iter(reports.values()), {"jobs": []})
    for j in par["jobs"]:
        jobs.append(f"| {j['job']} | {j['status']} | {j['seconds']:.1f} s | {j['peak_memory'] / 2**30:.2f} GB | "
                    f"{j['reason'][:90]} |")  # fmt: skip
    header = (f"`python bench/bench_batch.py{' --all' if args.all else ''}`: {len(built)} keras.applications models "
              f"({', '.join(built)}) x ONNX/TFLite plus 2 fault jobs, one manifest. Machine: {platform.machine()}, "
              f"{os.cpu_count()} CPUs, load average {load_before:.2f} before.")  # fmt: skip
    text = "\n".join([header, "", *rows, "", f"same outcome per job in every run: {'yes' if same else 'NO'}", "",
                      *jobs])  # fmt: skip
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
