"""Benchmark: Keras `.h5` to ONNX by the direct route without TensorFlow, side by side with today's
TensorFlow route and the tf2onnx CLI, in one run.

    python bench/bench_direct.py [--models MobileNetV2,ResNet50,VGG16] [--out results.md]
                                 [--light-python ~/.cache/modeltool/venv-notf-py311/bin/python]

For each model (keras.applications, `weights=None`, full 224x224 input, saved as legacy `.h5`):
  direct, light install   modeltool convert m.h5 m.onnx in the environment without TensorFlow
                          (`tests/test_no_tensorflow_env.py` creates it): the direct route, verified
                          against Keras 3 on JAX in onnxruntime; and the same with --no-verify
  direct, full install    modeltool convert --via direct, verified against Keras 3 on TensorFlow
  tf route                modeltool convert --via tf (rebuild, trace, tf2onnx), verified
  tf2onnx CLI             python -m tf2onnx.convert --saved-model (from `model.export`, made beforehand,
                          not counted), not verified
Every tool runs in a fresh interpreter: wall time (imports included) and the child's peak RSS. Then
each ONNX file's node count and its onnxruntime latency on this CPU (one thread, batch 1, median of
20 runs), measured in a child process of its own (so that this process stays small: a child's peak
RSS counts from the fork).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_convert import build  # noqa: E402
from measure import publish, run  # noqa: E402
from sweep_applications import onnx_figures  # noqa: E402

LIGHT = Path.home() / ".cache" / "modeltool" / f"venv-notf-py{sys.version_info.major}{sys.version_info.minor}"
#: models the tf2onnx CLI is known to run out of this machine's 24 GB on (README, Conversion)
CLI_OUT_OF_MEMORY = {"VGG16": "not run: killed at 24 GB (tf2onnx copies every constant through its passes)"}


def cell(r, path: Path, verified_by: str | None) -> str:
    if r.rc != 0 or not path.exists():
        return f"failed ({r.last_error()})"
    what = "not verified"
    if verified_by is not None:
        try:
            report = json.loads(r.stdout)
            what = "verified" if report["passed"] else "MISMATCH"
            what += f", {report['details'].get('route', '?')} route"
        except (ValueError, KeyError):
            what = "?"
    return f"{r.seconds:.1f} s, {r.peak_mb:.0f} MB{onnx_figures(str(path))} ({what})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="MobileNetV2,ResNet50,VGG16")
    parser.add_argument("--light-python", default=str(LIGHT / "bin" / "python"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    py, light = sys.executable, args.light_python
    if not Path(light).exists():
        print(f"{light}: no light environment; run `python -m pytest tests/test_no_tensorflow_env.py` first",
              file=sys.stderr)  # fmt: skip
        return 2
    head = ("| model | direct, no TensorFlow installed | the same, --no-verify | direct, TensorFlow installed "
            "| tf route | tf2onnx CLI --saved-model |")
    rows = [head, "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            d = Path(tmp) / name
            built = build(name, d)
            if built is None:
                continue
            h5, sm = built
            convert = ["-m", "modeltool", "convert", str(h5)]
            light_run = run([light, *convert, str(d / "light.onnx"), "--json", "--batch", "1"],
                            env={"KERAS_BACKEND": "jax"})  # fmt: skip
            unverified = run([light, *convert, str(d / "unverified.onnx"), "--json", "--no-verify"],
                             env={"KERAS_BACKEND": "jax"})  # fmt: skip
            direct = run([py, *convert, str(d / "direct.onnx"), "--json", "--batch", "1", "--via", "direct"])
            tf_route = run([py, *convert, str(d / "tf.onnx"), "--json", "--batch", "1", "--via", "tf"])
            cells = [cell(light_run, d / "light.onnx", "jax"), cell(unverified, d / "unverified.onnx", None),
                     cell(direct, d / "direct.onnx", "tf"),
                     cell(tf_route, d / "tf.onnx", "tf")]  # fmt: skip
            if name in CLI_OUT_OF_MEMORY:  # not started: it would take the machine's memory with it
                cells.append(CLI_OUT_OF_MEMORY[name])
            else:
                cli = run([py, "-m", "tf2onnx.convert", "--saved-model", str(sm), "--output", str(d / "cli.onnx")])
                cells.append(cell(cli, d / "cli.onnx", None))
            rows.append(f"| {name} | {' | '.join(cells)} |")
            print(rows[-1], file=sys.stderr, flush=True)
    table = "\n".join(rows)
    publish(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
