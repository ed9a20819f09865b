"""Benchmark: Keras `.h5` to `.tflite` by the direct route (no TensorFlow, no TFLite converter),
side by side with modeltool's TensorFlow route, `tf.lite.TFLiteConverter.from_keras_model` and
Keras's own `model.export(format="litert")`, in one run.

    python bench/bench_tflite.py [--models MobileNetV2,ResNet50] [--out results.md]
                                 [--light-python ~/.cache/modeltool/venv-notf-py311/bin/python]

For each model (keras.applications, `weights=None` with trained-looking BatchNormalization
statistics, logits out, full 224x224 input, saved as legacy `.h5`):
  direct, light install   modeltool convert m.h5 m.tflite in the environment without TensorFlow
                          (`tests/test_no_tensorflow_env.py` creates it), verified in LiteRT against
                          Keras 3 on JAX; and the same with --no-verify (conversion alone)
  direct, full install    modeltool convert --via direct, verified against Keras 3 on TensorFlow
  tf route                modeltool convert --via tf (rebuild, trace, TFLite converter), verified
  TFLiteConverter         keras.models.load_model + tf.lite.TFLiteConverter.from_keras_model, not verified
  Keras export            keras.models.load_model + model.export(format="litert"), not verified
Every tool runs in a fresh interpreter: wall time (imports included) and the child's peak RSS. Then
each file's size, op count, LiteRT latency (XNNPACK, one thread, batch 1, median of 20) and largest
error against Keras's own output for the same input (relative to the output's largest magnitude),
measured in a child process of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import publish, run  # noqa: E402

LIGHT = Path.home() / ".cache" / "modeltool" / f"venv-notf-py{sys.version_info.major}{sys.version_info.minor}"
BUILD = """
import sys, keras, numpy as np
name, h5, ref = sys.argv[1:4]
keras.utils.set_random_seed(0)
m = getattr(keras.applications, name)(weights=None, classifier_activation=None)
rng = np.random.default_rng(1)
for layer in m.layers:
    if type(layer).__name__ == "BatchNormalization":
        w = layer.get_weights()
        layer.set_weights([*w[:-2], (rng.standard_normal(w[-2].shape) * 0.1).astype("float32"),
                           rng.uniform(0.5, 1.5, w[-1].shape).astype("float32")])
m.save(h5)
x = rng.uniform(0, 255, (1, 224, 224, 3)).astype("float32")
np.savez(ref, x=x, y=np.asarray(keras.models.load_model(h5, compile=False)(x, training=False)))
"""
CONVERTER = """
import sys, keras, tensorflow as tf
m = keras.models.load_model(sys.argv[1], compile=False)
open(sys.argv[2], "wb").write(tf.lite.TFLiteConverter.from_keras_model(m).convert())
"""
KERAS_EXPORT = """
import sys, keras
m = keras.models.load_model(sys.argv[1], compile=False)
m.export(sys.argv[2], format="litert", verbose=False)
"""
FIGURES = """
import sys, time, numpy as np
from ai_edge_litert import schema_py_generated as s
from ai_edge_litert.interpreter import Interpreter
path, ref = sys.argv[1:3]
data = open(path, "rb").read()
ops = len(s.ModelT.InitFromPackedBuf(data, 0).subgraphs[0].operators)
it = Interpreter(model_path=path, num_threads=1)
it.allocate_tensors()
x, y = np.load(ref)["x"], np.load(ref)["y"]
i, o = it.get_input_details()[0], it.get_output_details()[0]
it.set_tensor(i["index"], x)
it.invoke()
error = float(np.abs(it.get_tensor(o["index"]) - y).max() / np.abs(y).max())
times = []
for _ in range(20):
    start = time.perf_counter()
    it.invoke()
    times.append(time.perf_counter() - start)
print(f", {len(data) / 1e6:.1f} MB, {ops} ops, {float(np.median(times)) * 1000:.1f} ms, error {error:.1e}")
"""


def cell(r, path: Path, ref: Path, verified: bool) -> str:
    if r.rc != 0 or not path.exists():
        return f"failed ({r.last_error()})"
    figures = run([sys.executable, "-c", FIGURES, str(path), str(ref)])
    extra = figures.stdout.strip() if figures.rc == 0 else f", figures failed: {figures.last_error()}"
    what = "not verified"
    if verified:
        try:
            report = json.loads(r.stdout)
            what = f"{'verified' if report['passed'] else 'MISMATCH'}, {report['details'].get('route', '?')} route"
        except (ValueError, KeyError):
            what = "?"
    return f"{r.seconds:.1f} s, {r.peak_mb:.0f} MB{extra} ({what})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="MobileNetV2,ResNet50")
    parser.add_argument("--light-python", default=str(LIGHT / "bin" / "python"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    py, light = sys.executable, args.light_python
    if not Path(light).exists():
        print(f"{light}: no light environment; run `python -m pytest tests/test_no_tensorflow_env.py` first",
              file=sys.stderr)  # fmt: skip
        return 2
    head = (
        "| model | direct, no TensorFlow installed | the same, --no-verify | direct, TensorFlow installed "
        '| tf route | TFLiteConverter.from_keras_model | Keras export(format="litert") |'
    )
    rows = [head, "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            d = Path(tmp) / name
            d.mkdir()
            h5, ref = d / "m.h5", d / "ref.npz"
            built = run([py, "-c", BUILD, name, str(h5), str(ref)])
            if built.rc:
                print(f"{name}: build failed: {built.last_error()}", file=sys.stderr)
                continue
            convert = ["-m", "modeltool", "convert", str(h5)]
            jax = {"KERAS_BACKEND": "jax"}
            runs = [
                (run([light, *convert, str(d / "light.tflite"), "--json", "--batch", "1"], env=jax), "light", True),
                (run([light, *convert, str(d / "fast.tflite"), "--json", "--no-verify"], env=jax), "fast", False),
                (run([py, *convert, str(d / "direct.tflite"), "--json", "--batch", "1", "--via", "direct"]),
                 "direct", True),
                (run([py, *convert, str(d / "tf.tflite"), "--json", "--batch", "1", "--via", "tf"]), "tf", True),
                (run([py, "-c", CONVERTER, str(h5), str(d / "converter.tflite")]), "converter", False),
                (run([py, "-c", KERAS_EXPORT, str(h5), str(d / "export.tflite")]), "export", False),
            ]  # fmt: skip
            cells = [cell(r, d / f"{stem}.tflite", ref, verified) for r, stem, verified in runs]
            rows.append(f"| {name} | {' | '.join(cells)} |")
            print(rows[-1], file=sys.stderr, flush=True)
    publish("\n".join(rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
