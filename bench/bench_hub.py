"""Benchmark: KerasHub backbones to ONNX and TFLite, modeltool side by side with Keras's own exporters,
in one run.

    python bench/bench_hub.py [--models gpt2,gemma,gemma1b] [--tools direct,fast,tf,keras-onnx,tflite,keras-litert]
                              [--out results.md]

Models (random weights, seeded, built from KerasHub constructors and saved as `.keras`):
  gpt2      GPT-2 base's sizes: vocabulary 50257, 12 layers, hidden 768 (124M parameters, 0.5 GB)
  gemma     Gemma's architecture at 300M: vocabulary 256000, hidden 1024, 2 layers, 8/1 heads
  gemma1b   Gemma 2B's sizes with 3 of its 18 layers: about 0.85 billion parameters (3.4 GB as float32,
            over ONNX's 2 GB protobuf limit): ONNX with external data (a 2-core, 24 GB machine holds
            the model, its trace and the ONNX weights side by side at this size)

Tools, each in a fresh interpreter (wall time with imports, the child's peak RSS):
  direct                modeltool convert m.keras m.onnx (`auto`: the direct route, KerasHub's blocks
                        written from their declarations, no tracing, no tf2onnx; verified against
                        Keras loading the file, two sequence lengths)
  fast                  the same with --no-verify
  tf                    modeltool convert m.keras m.onnx --via tf (traced, tf2onnx; verified)
  keras-onnx            model.export(path, format="onnx") after keras.saving.load_model (TensorFlow
                        backend, tf2onnx inside), then checked by `modeltool verify m.keras out.onnx`
  tflite                modeltool convert m.keras m.tflite --input-shape token_ids=1,128 ... (verified)
  keras-litert          model.export(path, format="litert"), then checked by `modeltool verify`
Each cell: seconds, peak MB, node or op count, verified or not. The ONNX peak is also given as a
multiple of the weights' size (the target for the 1B model: at most 1.5x).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import publish, run  # noqa: E402

MODELS = {
    "gpt2": ("GPT2Backbone", dict(vocabulary_size=50257, num_layers=12, num_heads=12, hidden_dim=768,
                                  intermediate_dim=3072, max_sequence_length=1024)),
    "gemma": ("GemmaBackbone", dict(vocabulary_size=256000, num_layers=2, num_query_heads=8, num_key_value_heads=1,
                                    hidden_dim=1024, intermediate_dim=8192, head_dim=128)),
    "gemma1b": ("GemmaBackbone", dict(vocabulary_size=256000, num_layers=3, num_query_heads=8, num_key_value_heads=1,
                                      hidden_dim=2048, intermediate_dim=32768, head_dim=256)),
}  # fmt: skip
SEQUENCE = 128
#: the columns, in order
TOOLS = {
    "direct": "modeltool onnx (auto: direct)",
    "fast": "the same, --no-verify",
    "tf": "modeltool onnx --via tf",
    "keras-onnx": "keras export onnx",
    "tflite": "modeltool tflite",
    "keras-litert": "keras export litert",
}
#: peak memory of Keras's exporters as a multiple of the weights, measured here on GPT-2 (124M):
#: export(format="onnx") 42x (tf2onnx copies every constant through its passes), "litert" 10x; a run
#: that would pass this machine's memory is not started (it would take the machine down with it)
KERAS_PEAK = {"onnx": 42, "litert": 10}
MEMORY = 20 << 30

BUILD = """
import json, sys, keras, keras_hub
keras.utils.set_random_seed(0)
model = getattr(keras_hub.models, sys.argv[1])(**json.loads(sys.argv[2]))
model.save(sys.argv[3])
print(model.count_params())
"""
EXPORT = """
import sys, numpy as np, keras, keras_hub
model = keras.saving.load_model(sys.argv[1], compile=False)
# Keras exports only a model that has been called: once, on a short valid input, as a user would
shapes = {t.name: [1 if d is None else d for d in t.shape] for t in model.inputs}
for name in shapes:
    if len(shapes[name]) == 2:
        shapes[name][1] = 8
model({n: np.ones(s, "int32" if n != "images" else "float32") for n, s in shapes.items()})
model.export(sys.argv[2], format=sys.argv[3], verbose=False)
"""


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def _ops(path: Path) -> str:
    """Node count of an ONNX file, op count of a TFLite file."""
    try:
        if path.suffix == ".onnx":
            import onnx

            return f", {len(onnx.load(str(path), load_external_data=False).graph.node)} nodes"
        from modeltool.loaders import load

        return f", {len(load(str(path)).graph.nodes)} ops"
    except Exception:  # noqa: BLE001 - a figure, not the verdict
        return ""


def _verified(py: str, src: Path, out: Path, shapes: list[str]) -> str:
    if not out.exists():
        return "no file"
    r = run([py, "-m", "modeltool", "verify", str(src), str(out), "--json", *shapes], timeout=3600)
    try:
        return "verified" if json.loads(r.stdout)["passed"] else "MISMATCH"
    except (ValueError, KeyError):
        return f"not runnable ({r.last_error()})"


def _verdict(r) -> str:
    try:
        return "verified" if r.rc == 0 and json.loads(r.stdout)["passed"] else "not verified"
    except (ValueError, KeyError):
        return "not verified"


def _keras_export(py: str, src: Path, out: Path, fmt: str, weights: int):
    """Keras's own exporter in a child process, unless it would need more than this machine has."""
    need = KERAS_PEAK[fmt] * weights
    if need > MEMORY:
        return f"not run: about {need / 2**30:.0f} GB at {KERAS_PEAK[fmt]}x the weights (measured on GPT-2)"
    return run([py, "-c", EXPORT, str(src), str(out), fmt], timeout=3600)


def _route(r) -> str:
    try:
        return json.loads(r.stdout)["details"]["route"]
    except (ValueError, KeyError, TypeError):
        return ""


def cell(r, out: Path, verdict: str, weights: int | None = None, route: str = "") -> str:
    if isinstance(r, str):
        return r
    if r.rc != 0 or not out.exists():
        return f"failed after {r.seconds:.0f} s, {r.peak_mb:.0f} MB ({r.last_error()})"
    ratio = f" = {r.peak_mb * 2**20 / weights:.2f}x weights" if weights else ""
    via = f", {route} route" if route else ""
    return f"{r.seconds:.1f} s, {r.peak_mb:.0f} MB{ratio}{_ops(out)} ({verdict}{via})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="gpt2,gemma,gemma1b")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    tools = args.tools.split(",")
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"--tools: unknown {', '.join(sorted(unknown))}; choose from {', '.join(TOOLS)}")
    py = sys.executable
    rows = ["| model | params | " + " | ".join(TOOLS.values()) + " |", "|---|---|" + "---|" * len(TOOLS)]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            cls, kwargs = MODELS[name]
            d = Path(tmp) / name
            d.mkdir()
            src = d / f"{name}.keras"
            built = run([py, "-c", BUILD, cls, json.dumps(kwargs), str(src)], timeout=3600)
            if built.rc != 0:
                rows.append(f"| {name} | build failed ({built.last_error()}) |")
                continue
            params = int(built.stdout.strip().splitlines()[-1])
            weights = params * 4
            fixed = [f"--input-shape={n}=1,{SEQUENCE}" for n in ("token_ids", "padding_mask")]
            convert = [py, "-m", "modeltool", "convert", str(src)]
            cells = []
            for tool in TOOLS:
                if tool not in tools:
                    cells.append("not run")
                elif tool in ("direct", "tf"):
                    out = d / f"{tool}.onnx"
                    via = "auto" if tool == "direct" else "tf"
                    r = run([*convert, str(out), "--json", "--batch", "1", "--via", via], timeout=3600)
                    cells.append(cell(r, out, _verdict(r), weights, _route(r)))
                elif tool == "fast":
                    r = run([*convert, str(d / "fast.onnx"), "--no-verify"], timeout=3600)
                    cells.append(cell(r, d / "fast.onnx", "not verified", weights))
                elif tool == "tflite":
                    r = run([*convert, str(d / "m.tflite"), "--json", *fixed], timeout=3600)
                    cells.append(cell(r, d / "m.tflite", _verdict(r)))
                else:
                    fmt, suffix = ("onnx", "onnx") if tool == "keras-onnx" else ("litert", "tflite")
                    out = d / f"keras.{suffix}"
                    r = _keras_export(py, src, out, fmt, weights)
                    cells.append(cell(r, out, _verified(py, src, out, fixed if fmt == "litert" else []), weights))
            rows.append(f"| {name} | {params / 1e6:.0f}M ({weights / 2**30:.2f} GiB) | {' | '.join(cells)} |")
            print(rows[-1], file=sys.stderr, flush=True)
    publish("\n".join(rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
