"""Sweep: every `keras.applications` model through `modeltool convert` to ONNX and TFLite.

    python bench/sweep_applications.py [--only VGG16,ConvNeXtTiny] [--size 64] [--out sweep.md]
                                       [--targets onnx:direct,onnx:tf,tflite]
                                       [--convert-args "--quantize int8 --inputs-as-nchw {input}"]

Each model is built with `weights=None` at a reduced input size (VGG16/19 at their full 224x224,
since their classifier's size, and so the memory test, depends on it), saved as `.keras`, then
converted in a fresh interpreter per target with verification on. Reports per model and target:
converted, verified, wall time, peak RSS; ONNX cells also the node count and onnxruntime latency
(one thread, batch 1, median of 20). A target `onnx:ROUTE` converts with `--via ROUTE` (direct: from
the IR without TensorFlow; tf: tf2onnx), so the two routes are compared model by model.
The goal is every model on this 2-core, 24 GB machine.
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


def input_size(name: str, size: int) -> int:
    """The square input side `name` is built at: `size`, raised to the model's minimum, or the full 224
    for VGG (its classifier's size depends on it)."""
    return FULL_SIZE.get(name, max(size, MIN_SIZE.get(name, 0)))


def build_zoo(names: list[str], size: int, zoo: Path) -> dict[str, str]:
    """Each model saved as `zoo/NAME.keras` (built in a child process, so its memory goes with it; a file
    already there is kept, so a zoo is built once for several runs). Returns name -> parameter count
    ("?" for a kept file) of those built; a build failure is printed and skipped."""
    built = {}
    for name in names:
        path = zoo / f"{name}.keras"
        if path.exists():
            built[name] = "?"
            continue
        b = run([sys.executable, "-c", BUILD, name, str(input_size(name, size)), str(path)])
        if b.rc:
            print(f"{name}: build failed: {b.last_error()}", file=sys.stderr)
            continue
        built[name] = b.stdout.strip()
    return built


FIGURES = """
import sys, time
import numpy as np, onnx, onnxruntime as ort
path = sys.argv[1]
count = len(onnx.load(path, load_external_data=False).graph.node)
options = ort.SessionOptions()
options.intra_op_num_threads = options.inter_op_num_threads = 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
feed = {i.name: np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in i.shape])
        .astype("float32") for i in session.get_inputs()}
session.run(None, feed)
times = []
for _ in range(20):
    start = time.perf_counter()
    session.run(None, feed)
    times.append(time.perf_counter() - start)
print(f", {count} nodes, {float(np.median(times)) * 1000:.1f} ms")
"""


def onnx_figures(path: str) -> str:
    """", N nodes, L ms": the file's node count and onnxruntime latency (1 thread, batch 1, median of
    20), measured in a child process: loaded here, a large model would grow this process, and every
    later child's peak RSS (counted from the fork) with it."""
    r = run([sys.executable, "-c", FIGURES, path])
    return r.stdout.strip() if r.rc == 0 else f", figures failed: {r.last_error()}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=None)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--out", default=None)
    parser.add_argument("--targets", default="onnx,tflite", help="onnx, onnx:direct, onnx:tf, tflite")
    parser.add_argument("--convert-args", default="", help="more convert flags, e.g. '--quantize int8 "
                        "--inputs-as-nchw {input}' ({input}: the model's input name, as inspect shows it)")
    args = parser.parse_args()
    targets = args.targets.split(",")
    names = args.only.split(",") if args.only else applications()
    py = sys.executable
    rows = ["| model | input | params | " + " | ".join(targets) + " |", "|---|---|---|" + "---|" * len(targets)]
    results = []
    for name in names:
        size = input_size(name, args.size)
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / f"{name}.keras"
            built = run([py, "-c", BUILD, name, str(size), str(src)])
            if built.rc:
                rows.append(f"| {name} | {size} | - | build failed: {built.last_error()} | |")
                continue
            cells = []
            for target in targets:
                kind, _, route = target.partition(":")
                suffix = f".{kind}"
                dst = str(Path(tmp) / f"m_{route or 'auto'}{suffix}")
                via = ["--via", route] if route else []
                extra = args.convert_args.split()
                if any("{input}" in a for a in extra):
                    import modeltool

                    extra = [a.replace("{input}", modeltool.load(src).inputs[0].name) for a in extra]
                r = run([py, "-m", "modeltool", "convert", str(src), dst, "--json", "-q", "--batch", "1", *via, *extra])
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
                extra = onnx_figures(dst) if verified and kind == "onnx" else ""
                cells.append(f"{status}{note}, {r.seconds:.0f} s, {r.peak_mb / 1024:.1f} GB{extra}")
                results.append({"model": name, "target": target, "verified": verified})
            rows.append(f"| {name} | {size} | {built.stdout.strip()} | {' | '.join(cells)} |")
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
