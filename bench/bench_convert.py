"""Benchmark: `modeltool convert` (verification included) against the peer routes, same run.

    python bench/bench_convert.py [--models mlp,lstm,MobileNetV2,ResNet50] [--out results.md]

For each model (built with random weights, saved as legacy `.h5`):
  ONNX   modeltool convert x.h5 x.onnx          (load, rebuild, convert, check, verify in onnxruntime)
         script: keras.models.load_model + tf2onnx.convert.from_keras
         python -m tf2onnx.convert --saved-model (SavedModel from model.export, made beforehand)
  TFLite modeltool convert x.h5 x.tflite        (verified in the interpreter)
         script: keras.models.load_model + TFLiteConverter.from_keras_model
Every tool runs in a fresh interpreter; wall time and the child's peak RSS are measured, and the
ONNX node counts compared. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import publish, run  # noqa: E402

BUILD = """
import sys, keras
name, h5, sm = sys.argv[1:4]
keras.utils.set_random_seed(0)
if name == "mlp":
    m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                          keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10, activation="softmax")])
elif name == "lstm":
    m = keras.Sequential([keras.Input((40,), dtype="int32"), keras.layers.Embedding(5000, 64),
                          keras.layers.LSTM(128), keras.layers.Dense(2, activation="softmax")])
else:
    m = getattr(keras.applications, name)(weights=None)
m.save(h5)
m.export(sm, verbose=False)
"""
PEER_ONNX = """
import sys, keras, tf2onnx
m = keras.models.load_model(sys.argv[1], compile=False)
tf2onnx.convert.from_keras(m, output_path=sys.argv[2])
"""
PEER_TFLITE = """
import sys, keras, tensorflow as tf
m = keras.models.load_model(sys.argv[1], compile=False)
open(sys.argv[2], "wb").write(tf.lite.TFLiteConverter.from_keras_model(m).convert())
"""


def build(name: str, folder: Path) -> tuple[Path, Path] | None:
    """`name` (mlp, lstm or a keras.applications model, seed 0) saved as `folder/m.h5` and exported
    as the SavedModel `folder/sm` the tf2onnx CLI converts; None (said on stderr) when it fails."""
    folder.mkdir()
    h5, sm = folder / "m.h5", folder / "sm"
    built = run([sys.executable, "-c", BUILD, name, str(h5), str(sm)])
    if built.rc:
        print(f"{name}: build failed: {built.last_error()}", file=sys.stderr)
        return None
    return h5, sm


def nodes(path: Path) -> int | None:
    try:
        import onnx

        return len(onnx.load(str(path), load_external_data=False).graph.node)
    except Exception:  # noqa: BLE001 - a failed peer wrote nothing or garbage
        return None


def cell(r, path: Path | None = None) -> str:
    if r.rc != 0:
        return f"failed ({r.last_error()})"
    extra = f", {nodes(path)} nodes" if path is not None and path.suffix == ".onnx" else ""
    return f"{r.seconds:.1f} s, {r.peak_mb:.0f} MB{extra}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="mlp,lstm,MobileNetV2,ResNet50")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    py = sys.executable
    rows = ["| model | target | modeltool (verified) | script (load_model + converter) | tf2onnx CLI --saved-model |",
            "|---|---|---|---|---|"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            d = Path(tmp) / name
            built = build(name, d)
            if built is None:
                continue
            h5, sm = built
            mt = run([py, "-m", "modeltool", "convert", str(h5), str(d / "mt.onnx"), "-q", "--batch", "1"])
            peer = run([py, "-c", PEER_ONNX, str(h5), str(d / "peer.onnx")])
            cli = run([py, "-m", "tf2onnx.convert", "--saved-model", str(sm), "--output", str(d / "cli.onnx")])
            onnx_cells = [cell(mt, d / "mt.onnx"), cell(peer, d / "peer.onnx"), cell(cli, d / "cli.onnx")]
            rows.append(f"| {name} | ONNX | {' | '.join(onnx_cells)} |")
            mt = run([py, "-m", "modeltool", "convert", str(h5), str(d / "mt.tflite"), "-q", "--batch", "1"])
            peer = run([py, "-c", PEER_TFLITE, str(h5), str(d / "peer.tflite")])
            rows.append(f"| {name} | TFLite | {cell(mt)} | {cell(peer)} | - |")
            print(rows[-2] + "\n" + rows[-1], file=sys.stderr)
    table = "\n".join(rows)
    publish(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
