"""Bench: deployment-ready ONNX on MobileNetV2 and ResNet50, side by side in one run.

    python bench/bench_onnx_deploy.py [--size 64] [--only MobileNetV2] [--out bench/results/bench_onnx_deploy.md]

1. Quantization: float vs `--quantize dynamic|int8|float16` ONNX and the same model as TFLite int8:
   file size, latency on this CPU (onnxruntime / LiteRT, one thread, batch 1, median), cosine of the
   logits to what Keras computes on 8 seeded inputs. Two sets of random weights: as Keras initializes
   them, and with every BatchNormalization's statistics settled on random inputs (a training-mode
   pass with momentum 0), which gives O(1) activations as in a trained network.
2. Layout and optimization: activation transposes and node counts with and without
   `--inputs-as-nchw` and `--optimize`, beside `python -m tf2onnx.convert --saved-model
   --inputs-as-nchw` (tf2onnx's own), with latency.
3. What `--optimize` uses, by measurement: onnxslim (when installed) vs onnxruntime's offline
   optimization at its basic (portable) and extended (onnxruntime-only ops) levels: nodes, latency in
   onnxruntime as it runs by default and with its own optimizations off (a runtime without an optimizer).

Conversions run in this process through `modeltool.convert` with verification off (the cosine is
measured here; with verification on, a file below its documented tolerance is not written).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

KINDS = (None, "dynamic", "int8", "float16")
RUNS = 20
ROUNDS = 5


def build(name: str, size: int, settled: bool, path: Path) -> tuple[object, str]:
    """The application with random weights, logits out; saved to `path`. Returns (model, input name)."""
    import keras

    import modeltool

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    if settled:
        layers = [la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
        momenta = [la.momentum for la in layers]
        for layer in layers:
            layer.momentum = 0.0
        model(np.random.default_rng(99).standard_normal((16, size, size, 3)).astype("float32"), training=True)
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    model.save(path)
    return model, modeltool.load(path).inputs[0].name


def ort_session(path: str, optimizations: bool = True) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if not optimizations:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def median_ms(fn: object, runs: int = RUNS, rounds: int = ROUNDS) -> float:
    """The lowest of `rounds` medians of `runs` calls: other work on a shared 2-core machine only
    ever adds time, so the quietest round is the closest to what the model itself costs."""
    for _ in range(3):
        fn()
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        medians.append(float(np.median(times)))
    return min(medians) * 1000


def ort_run(path: str, name: str, x: np.ndarray, nchw: bool = False) -> tuple[np.ndarray, float]:
    """(outputs on `x`, latency in ms of one sample)."""
    session = ort_session(path)
    feed = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x
    out = session.run(None, {name: feed})[0]
    one = feed[:1]
    return out, median_ms(lambda: session.run(None, {name: one}))


def tflite_run(path: str, x: np.ndarray) -> tuple[np.ndarray, float]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=1)
    detail = interp.get_input_details()[0]
    interp.resize_tensor_input(detail["index"], [1, *x.shape[1:]])
    interp.allocate_tensors()
    out_index = interp.get_output_details()[0]["index"]

    def one(sample: np.ndarray) -> np.ndarray:
        interp.set_tensor(detail["index"], sample)
        interp.invoke()
        return interp.get_tensor(out_index).copy()

    outs = np.concatenate([one(x[i : i + 1]) for i in range(len(x))])
    return outs, median_ms(lambda: one(x[:1]))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom else float("nan")


def transposes_and_nodes(path: str) -> tuple[int, int]:
    import onnx

    from modeltool.exporters.onnx_layout import activation_transposes

    model = onnx.load(path)
    return activation_transposes(model), len(model.graph.node)


def mb(path: str) -> str:
    return f"{os.path.getsize(path) / 1e6:.1f} MB"


def quantization_rows(name: str, size: int, tmp: Path) -> list[str]:
    from modeltool.convert import convert
    from modeltool.options import ConvertOptions
    from modeltool.verify import TOLERANCES

    rows = []
    x = np.random.default_rng(7).standard_normal((8, size, size, 3)).astype("float32")
    for settled in (False, True):
        src = tmp / f"{name}_{int(settled)}.keras"
        model, inp = build(name, size, settled, src)
        want = model.predict(x, verbose=0)
        weights = "BN settled" if settled else "Keras init"
        for kind in KINDS:
            dst = str(tmp / f"{name}_{kind}.onnx")
            convert(src, dst, ConvertOptions(quantize=kind, verify=False, force=True, via="tf", batch=1))
            got, ms = ort_run(dst, inp, x)
            cos = cosine(got, want)
            ok = "" if kind is None or cos >= TOLERANCES[kind].min_cosine else " (below its tolerance)"
            rows.append(f"| {name} | {weights} | ONNX {kind or 'float32'} | {mb(dst)} | {ms:.2f} ms | {cos:.4f}{ok} |")
            print(rows[-1], file=sys.stderr, flush=True)
        dst = str(tmp / f"{name}_int8.tflite")
        convert(src, dst, ConvertOptions(quantize="int8", verify=False, force=True, batch=1))
        got, ms = tflite_run(dst, x)
        cos = cosine(got, want)
        ok = "" if cos >= TOLERANCES["int8"].min_cosine else " (below its tolerance)"
        rows.append(f"| {name} | {weights} | TFLite int8 | {mb(dst)} | {ms:.2f} ms | {cos:.4f}{ok} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def layout_rows(name: str, size: int, tmp: Path) -> tuple[list[str], str]:
    """Rows of the layout table; returns also the plain modeltool ONNX path for the optimizer table."""
    from modeltool.convert import convert
    from modeltool.options import ConvertOptions

    src = tmp / f"{name}_0.keras"
    model, inp = build(name, size, False, src)
    x = np.random.default_rng(7).standard_normal((1, size, size, 3)).astype("float32")
    rows = []
    plain = ""
    for nchw in (False, True):
        for optimize in (False, True):
            dst = str(tmp / f"{name}_layout_{int(nchw)}{int(optimize)}.onnx")
            options = ConvertOptions(inputs_as_nchw=(inp,) if nchw else (), optimize=optimize, verify=False,
                                     force=True, via="tf", batch=1)  # fmt: skip
            convert(src, dst, options)
            plain = plain or dst
            t, n = transposes_and_nodes(dst)
            _, ms = ort_run(dst, inp, x, nchw=nchw)
            flags = " ".join(f for f, on in (("--inputs-as-nchw", nchw), ("--optimize", optimize)) if on) or "(none)"
            rows.append(f"| {name} | modeltool {flags} | {t} | {n} | {ms:.2f} ms |")
            print(rows[-1], file=sys.stderr, flush=True)
    saved = tmp / f"{name}_saved"
    model.export(str(saved), verbose=False)
    signature_input = None  # the SavedModel's input name, as tf2onnx names the ONNX input
    for nchw in (False, True):
        dst = str(tmp / f"{name}_tf2onnx_{int(nchw)}.onnx")
        cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved), "--output", dst, "--opset", "18"]
        flag = ["--inputs-as-nchw", signature_input] if nchw and signature_input else []
        start = time.perf_counter()
        proc = subprocess.run(cmd + flag, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        label = f"tf2onnx CLI {'--inputs-as-nchw' if nchw else '(none)'}"
        if proc.returncode or (nchw and not flag):
            rows.append(f"| {name} | {label} | failed | | |")
            continue
        import onnx

        signature_input = onnx.load(dst).graph.input[0].name
        t, n = transposes_and_nodes(dst)
        _, ms = ort_run(dst, signature_input, x, nchw=nchw)
        rows.append(f"| {name} | {label} ({seconds:.0f} s) | {t} | {n} | {ms:.2f} ms |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows, plain


def optimizer_rows(name: str, size: int, plain: str, inp: str, tmp: Path) -> list[str]:
    import onnx
    import onnxruntime as ort

    x = np.random.default_rng(7).standard_normal((1, size, size, 3)).astype("float32")
    files = {"none": plain}
    try:
        import onnxslim

        start = time.perf_counter()
        onnx.save(onnxslim.slim(onnx.load(plain)), str(tmp / "slim.onnx"))
        files[f"onnxslim {onnxslim.__version__} ({time.perf_counter() - start:.1f} s)"] = str(tmp / "slim.onnx")
    except ImportError:
        pass
    for level, label in ((ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "basic"),
                         (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "extended")):  # fmt: skip
        dst = str(tmp / f"ort_{label}.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level, options.optimized_model_filepath = level, dst
        options.log_severity_level = 3
        start = time.perf_counter()
        ort.InferenceSession(plain, options, providers=["CPUExecutionProvider"])
        files[f"onnxruntime {label} ({time.perf_counter() - start:.1f} s)"] = dst
    sessions = {k: (ort_session(p), ort_session(p, optimizations=False)) for k, p in files.items()}
    rows = []
    for label, path in files.items():
        model = onnx.load(path)
        domains = sorted({n.domain or "ai.onnx" for n in model.graph.node})
        on, off = sessions[label]
        ms_on = median_ms(lambda s=on: s.run(None, {inp: x}))
        ms_off = median_ms(lambda s=off: s.run(None, {inp: x}))
        rows.append(f"| {name} | {label} | {len(model.graph.node)} | {', '.join(domains)} | {ms_on:.2f} ms | "
                    f"{ms_off:.2f} ms |")  # fmt: skip
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--only", default="MobileNetV2,ResNet50")
    parser.add_argument("--out", default=str(ROOT / "bench/results/bench_onnx_deploy.md"))
    args = parser.parse_args()
    names = args.only.split(",")
    quant = ["| model | weights | file | size | latency | cosine to Keras |", "|---|---|---|---|---|---|"]
    layout = ["| model | written by | transposes | nodes | latency |", "|---|---|---|---|---|"]
    optim = ["| model | optimizer | nodes | op domains | latency (onnxruntime as it runs) | latency (its own "
             "optimizations off) |", "|---|---|---|---|---|---|"]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-onnx-deploy-") as tmp_name:
        tmp = Path(tmp_name)
        for name in names:
            quant += quantization_rows(name, args.size, tmp)
            rows, plain = layout_rows(name, args.size, tmp)
            layout += rows
            import modeltool

            inp = modeltool.load(tmp / f"{name}_0.keras").inputs[0].name
            optim += optimizer_rows(name, args.size, plain, inp, tmp)
    head = (f"Input {args.size}x{args.size}x3, random weights, logits out; one onnxruntime/LiteRT thread, batch 1, "
            f"lowest of {ROUNDS} medians of {RUNS} runs.")  # fmt: skip
    text = "\n\n".join([head, "\n".join(quant), "\n".join(layout), "\n".join(optim)]) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
