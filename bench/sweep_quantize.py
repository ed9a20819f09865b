"""Sweep: every `keras.applications` model to ONNX with each `--quantize` kind and channels-first input.

    python bench/sweep_quantize.py [--only MobileNetV2,ResNet50] [--kinds int8,dynamic,float16]
                                   [--jobs 2] [--zoo DIR] [--keep DIR] [--out sweep_quantize.md]

The models are built as `sweep_applications.py` builds them (`weights=None`, 64x64 input, VGG16/19 at
224x224) and listed in one manifest, each model once per kind with `--inputs-as-nchw` on its input
(`batch: 1`, as the sweep converts them). The manifest runs as one `modeltool batch` call, so every
(model, kind) is its own process with its own limits and the two cores run two jobs at once. `int8` is
calibrated on random data: these models have random weights and no dataset (the conversion warns).

Reported per model and kind, from each job's convert report: the outcome against the quantized
tolerances, the weights' size ratio float/quantized, the lowest output cosine to the float Keras
model, the transposes left in the graph, wall time and peak memory of the job.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import publish, run  # noqa: E402
from sweep_applications import applications, build_zoo  # noqa: E402

KINDS = ("int8", "dynamic", "float16")


def manifest(zoo: Path, names: list[str], kinds: list[str]) -> Path:
    """One entry per (model, kind): `--quantize KIND --inputs-as-nchw <its input>`."""
    import modeltool

    lines = ["targets: [onnx]", "defaults: {batch: 1}", "models:"]
    for name in names:
        path = zoo / f"{name}.keras"
        image = modeltool.load(path).inputs[0].name
        for kind in kinds:
            lines += [f"  - path: {path.name}", f"    name: {name}/{kind}", f"    quantize: {kind}",
                      f"    inputs_as_nchw: [{image}]"]  # fmt: skip
    listed = zoo / "quantize.yaml"
    listed.write_text("\n".join(lines) + "\n")
    return listed


def cell(job: dict, out: Path) -> str:
    """One job as "verified, 3.9x, cos 0.99941, 0 transposes, 41 s, 3.1 GB" (or why it failed)."""
    figures = f"{job['seconds']:.0f} s, {job['peak_memory'] / 2**30:.1f} GB"
    if not job.get("report") or not (out / job["report"]).exists():
        return f"{job['status']}: {job['reason'][:70]}, {figures}"
    report = json.loads((out / job["report"]).read_text())
    details = report.get("details") or {}
    parts = [job["status"]]
    if details.get("quantized_weight_bytes"):
        parts.append(f"{details['float_weight_bytes'] / details['quantized_weight_bytes']:.1f}x")
    outputs = (report.get("verification") or {}).get("outputs", [])
    cosines = [o["cosine"] for o in outputs if o.get("cosine") is not None]
    if cosines:
        parts.append(f"cos {min(cosines):.5f}")
    if "transposes" in details:
        parts.append(f"{details['transposes']} transposes")
    return ", ".join(parts) + ", " + figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=None)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--zoo", default=None, help="keep the built models here (reused by a later run)")
    parser.add_argument("--keep", default=None, help="the batch's output folder (its cache makes a rerun instant)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    names = args.only.split(",") if args.only else applications()
    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        zoo = Path(args.zoo or Path(tmp) / "zoo")
        zoo.mkdir(parents=True, exist_ok=True)
        built = list(build_zoo(names, args.size, zoo))
        listed = manifest(zoo, built, kinds)
        out = Path(args.keep or Path(tmp) / "out")
        r = run([sys.executable, "-m", "modeltool", "batch", "--manifest", str(listed), "--out", str(out),
                 "--jobs", str(args.jobs), "--json"], timeout=4 * 3600)  # fmt: skip
        try:
            report = json.loads(r.stdout)
        except ValueError:
            print(f"modeltool batch: exit {r.rc}: {r.last_error()}", file=sys.stderr)
            return 1
        jobs = {j["model"]: j for j in report["jobs"]}
        rows = ["| model | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for name in built:
            rows.append(f"| {name} | " + " | ".join(cell(jobs[f"{name}/{k}"], out) for k in kinds) + " |")
        c = report["counts"]
        passed = {k: sum(jobs[f"{n}/{k}"]["passed"] for n in built) for k in kinds}
        summary = ", ".join(f"{k} {passed[k]}/{len(built)}" for k in kinds)
        header = (f"`python bench/sweep_quantize.py`: {len(built)} keras.applications models x {len(kinds)} kinds "
                  f"with `--inputs-as-nchw`, one `modeltool batch --jobs {args.jobs}` call: {r.seconds / 60:.0f} min, "
                  f"{c['passed']}/{c['jobs']} jobs passed ({summary}).")  # fmt: skip
        publish("\n".join([header, "", *rows]), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
