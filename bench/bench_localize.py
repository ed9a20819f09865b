"""Benchmark: `verify --localize` against a plain `verify`, side by side in one run (issue 13's target:
localization at most 3x a plain verification on ResNet50 .h5 vs .onnx).

    python bench/bench_localize.py [--model ResNet50] [--repeat 3]

Writes ResNet50 (weights=None, fixed seed) as .h5, converts it to ONNX with modeltool, then times
both commands in fresh interpreters (imports and model loading included, as a user sees them),
median of --repeat runs, with each child's peak RSS. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import run  # noqa: E402 - bench helper beside this script


def _write_model(name: str, out: Path) -> Path:
    code = (
        "import keras, sys; keras.utils.set_random_seed(0); "
        f"m = getattr(keras.applications, {name!r})(weights=None, input_shape=(224, 224, 3)); "
        "m.save(sys.argv[1])"
    )
    path = out / f"{name}.h5"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True)
    return path


def _timed(args: list[str]) -> tuple[float, float, int]:
    result = run([sys.executable, "-m", "modeltool", *args])
    return result.seconds, result.peak_mb, result.rc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ResNet50")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        h5 = _write_model(args.model, folder)
        onnx_path = folder / f"{args.model}.onnx"
        subprocess.run([sys.executable, "-m", "modeltool", "convert", str(h5), str(onnx_path), "-q"], check=True)
        rows = []
        for label, extra in (("verify", []), ("verify --localize", ["--localize"])):
            runs = [_timed(["verify", str(h5), str(onnx_path), "-q", *extra]) for _ in range(args.repeat)]
            assert all(code == 0 for _, _, code in runs), f"{label} failed"
            rows.append((label, statistics.median(t for t, _, _ in runs), max(r for _, r, _ in runs)))
    base = rows[0][1]
    print(f"| {args.model} .h5 vs .onnx | wall (median of {args.repeat}) | peak RSS | vs plain verify |")
    print("|---|---|---|---|")
    for label, wall, rss in rows:
        print(f"| `{label}` | {wall:.1f} s | {rss:.0f} MB | {wall / base:.2f}x |")
    print(f"\n(cpu count {os.cpu_count()})")


if __name__ == "__main__":
    main()
