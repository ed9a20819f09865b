"""Sweep: every `keras.applications` model through `modeltool convert` to ONNX and TFLite.

    python bench/sweep_applications.py [--only VGG16,ConvNeXtTiny] [--size 64] [--out sweep.md]

Each model is built with `weights=None` at a reduced input size (VGG16/19 at their full 224x224,
since their classifier's size, and so the memory test, depends on it), saved as `.keras`, then
converted in a fresh interpreter per target with verification on. Reports per model and target:
converted, verified, wall time, peak RSS. The goal is every model on this 2-core, 24 GB machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import run  # noqa: E402

FULL_SIZE = {"VGG16": 224, "VGG19": 224}
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
BUILD = """
import sys, keras
name, size, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))
m.save(path)
print(m.count_params())
"""


def applications() -> list[str]:
    import keras

    return sorted(n for n in dir(keras.applications) if n[0].isupper())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=None)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    names = args.only.split(",") if args.only else applications()
    py = sys.executable
    rows = ["| model | input | params | ONNX | TFLite |", "|---|---|---|---|---|"]
    results = []
    for name in names:
        size = FULL_SIZE.get(name, max(args.size, MIN_SIZE.get(name, 0)))
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / f"{name}.keras"
            built = run([py, "-c", BUILD, name, str(size), str(src)])
            if built.rc:
                rows.append(f"| {name} | {size} | - | build failed: {built.last_error()} | |")
                continue
            cells = []
            for suffix in (".onnx", ".tflite"):
                dst = str(Path(tmp) / f"m{suffix}")
                r = run([py, "-m", "modeltool", "convert", str(src), dst, "--json", "-q", "--batch", "1"])
                try:
                    report = json.loads(r.stdout)
                except ValueError:
                    report = None
                verified = bool(report and report["passed"] and report["written"])
                status = "verified" if verified else ("MISMATCH" if report else f"failed: {r.last_error()}")
                note = ""
                if report and report.get("verification"):
                    if any("noise" in o["verdict"] for o in report["verification"]["outputs"]):
                        note = " (within noise floor)"
                cells.append(f"{status}{note}, {r.seconds:.0f} s, {r.peak_mb / 1024:.1f} GB")
                results.append({"model": name, "target": suffix[1:], "verified": verified})
            rows.append(f"| {name} | {size} | {built.stdout.strip()} | {cells[0]} | {cells[1]} |")
            print(rows[-1], file=sys.stderr, flush=True)
    table = "\n".join(rows)
    print(table)
    ok = sum(r["verified"] for r in results)
    print(f"\n{ok}/{len(results)} conversions verified")
    if args.out:
        Path(args.out).write_text(table + f"\n\n{ok}/{len(results)} conversions verified\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
