"""Benchmark: wall time of `modeltool inspect` for one file of every TensorFlow-free format.

    python bench/bench_inspect_speed.py [--repeat 3] [--mb 100] [--out bench/results/inspect_speed.md]

Target (issue 12): every inspect under 0.3 s, for models up to 100 MB. Each inspect runs in a fresh
process (interpreter start and imports included, as a user experiences it); the best of `--repeat`
runs is reported, since the slower runs measure the other jobs of the machine, not modeltool.
Besides the committed fixtures, the bench writes ~`--mb` MB models into a temporary folder with
numpy, h5py and onnx only (no TensorFlow): an ONNX MLP built with onnx.helper, and the fixture
`keras3/sequential_mlp` scaled up (its config with wider, repeated Dense layers) as a legacy .h5,
a .weights.h5 and a .keras, written in the layout of the committed fixtures. They are written by a
child process, so that this one stays small: a child's peak RSS counts the parent's at fork time.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
LIMIT_S = 0.3
WIDTH = 2048  # a 2048x2048 float32 kernel is 16 MiB

#: (format, committed fixture)
FIXTURE_CASES = [
    ("ONNX", "graphs/conv_bn.onnx"),
    ("Keras 3 .h5", "keras3/conv_bn.h5"),
    ("Keras 2 .h5", "keras2/conv_bn.h5"),
    (".keras", "keras3/conv_bn.keras"),
    ("Keras 3 .weights.h5", "keras3/conv_bn.weights.h5"),
    ("Keras 2 weights .h5", "keras2/conv_bn_weights.h5"),
    ("JSON config", "keras3/conv_bn.json"),
    ("YAML config", "keras2/conv_bn.yaml"),
    ("TFLite", "graphs/conv_bn.tflite"),
    ("SavedModel (Keras 2)", "tf/keras2_sm"),
    ("SavedModel (Keras 3 export)", "tf/keras3_export"),
    ("SavedModel (TF1 builder)", "tf/tf1_builder"),
    ("checkpoint (TF1)", "tf/tf1_ckpt"),
    ("checkpoint (TF2 object graph)", "tf/keras3_ckpt"),
    ("frozen GraphDef .pb", "tf/tf1_frozen.pb"),
    ("GraphDef .pbtxt", "tf/tf1_frozen.pbtxt"),
]


def modeltool_command() -> tuple[list[str], str]:
    """The console script of this interpreter's environment (not a version-manager shim, whose own
    start-up is not modeltool's), else `python -m modeltool`."""
    script = Path(sys.executable).with_name("modeltool")
    if script.is_file():
        return [str(script)], str(script)
    return [sys.executable, "-m", "modeltool"], f"{sys.executable} -m modeltool"


def timed(cmd: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS (MiB, the child's own), exit code and stdout of one run."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode("utf-8", "replace")
        if proc.returncode:
            text += err.read().decode("utf-8", "replace")
        return seconds, usage.ru_maxrss / 1024, proc.returncode, text


def best_of(cmd: list[str], repeat: int) -> tuple[float, float, int, str]:
    runs = [timed(cmd) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


# --- large models, written without TensorFlow -------------------------------------------------------


def layer_count(mb: int) -> int:
    """Hidden Dense layers of WIDTH units that make about `mb` MB of float32 weights."""
    return max(1, round(mb * 1e6 / (4 * (WIDTH * WIDTH + WIDTH))))


def write_onnx(path: Path, mb: int) -> None:
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layer_count(mb)):
        inits += [numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH), dtype=np.float32), f"w{i}"),
                  numpy_helper.from_array(np.zeros(WIDTH, np.float32), f"b{i}")]  # fmt: skip
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"], name=f"dense{i}/MatMul"),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"], name=f"dense{i}/Add"),
                  helper.make_node("Relu", [f"a{i}"], [f"r{i}"], name=f"dense{i}/Relu")]  # fmt: skip
        x = f"r{i}"
    io_type = onnx.TensorProto.FLOAT
    graph = helper.make_graph(nodes, "big_mlp", [helper.make_tensor_value_info("x", io_type, ["batch", WIDTH])],
                              [helper.make_tensor_value_info(x, io_type, ["batch", WIDTH])], inits)  # fmt: skip
    model = helper.make_model(graph, producer_name="bench_inspect_speed", opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(path))


def scaled_config(config: dict, depth: int) -> tuple[dict, list[tuple[str, tuple[int, ...]]]]:
    """The fixture's Sequential (input, hidden Dense, Dropout, Dense head) with the hidden Dense
    repeated `depth` times at WIDTH units; also each Dense layer's name and kernel shape."""
    config = copy.deepcopy(config)
    inp, hidden, dropout, head = config["config"]["layers"]
    inp["config"]["batch_shape"] = [None, WIDTH]
    layers, dense = [inp], []
    for i in range(depth):
        layer = copy.deepcopy(hidden)
        layer["config"].update(name="hidden" if i == 0 else f"hidden_{i}", units=WIDTH)
        layers.append(layer)
        dense.append((layer["config"]["name"], (WIDTH, WIDTH)))
    layers += [dropout, head]
    dense.append((head["config"]["name"], (WIDTH, head["config"]["units"])))
    for layer in layers:
        if "build_config" in layer:
            layer["build_config"]["input_shape"] = [None, WIDTH]
    config["config"]["layers"] = layers
    config["config"]["build_input_shape"] = [None, WIDTH]
    if "build_config" in config:
        config["build_config"]["input_shape"] = [None, WIDTH]
    return config, dense


def _values(rng: Any, shape: tuple[int, ...]) -> Any:
    import numpy as np

    return rng.standard_normal(shape, dtype=np.float32)


def write_legacy_h5(path: Path, mb: int) -> None:
    """A full-model .h5 as Keras 3 writes it (layout of fixtures/keras3/sequential_mlp.h5)."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(1)
    with h5py.File(FIXTURES / "keras3/sequential_mlp.h5", "r") as src, h5py.File(path, "w") as dst:
        config, dense = scaled_config(json.loads(src.attrs["model_config"]), layer_count(mb))
        model_name = config["config"]["name"]
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        dst.attrs["model_config"] = json.dumps(config)
        weights = dst.create_group("model_weights")
        for key, value in src["model_weights"].attrs.items():
            weights.attrs[key] = value
        names = [n for n, _ in dense[:-1]] + ["dropout", dense[-1][0]]
        weights.attrs["layer_names"] = np.array(names, dtype=h5py.string_dtype())
        for name, kernel in dense:
            group = weights.create_group(name)
            group.attrs["weight_names"] = np.array([f"{model_name}/{name}/kernel", f"{model_name}/{name}/bias"],
                                                   dtype=h5py.string_dtype())  # fmt: skip
            group.create_dataset(f"{model_name}/{name}/kernel", data=_values(rng, kernel))
            group.create_dataset(f"{model_name}/{name}/bias", data=np.zeros(kernel[1], np.float32))
        for empty in ("dropout", "top_level_model_weights"):
            weights.create_group(empty).attrs["weight_names"] = np.array([], dtype=np.float64)


def write_keras3_weights(path: Path, config: dict, dense: list[tuple[str, tuple[int, ...]]]) -> None:
    """A .weights.h5 as Keras 3 writes it (layout of fixtures/keras3/sequential_mlp.weights.h5)."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(2)
    with h5py.File(path, "w") as dst:
        layers = dst.create_group("layers")
        for i, (name, kernel) in enumerate(dense):
            vars_ = layers.create_group("dense" if i == 0 else f"dense_{i}").create_group("vars")
            vars_.attrs["name"] = name
            vars_.create_dataset("0", data=_values(rng, kernel))
            vars_.create_dataset("1", data=np.zeros(kernel[1], np.float32))
        layers.create_group("dropout").create_group("vars").attrs["name"] = "dropout"
        dst.create_group("vars").attrs["name"] = config["config"]["name"]


def write_keras_zip(path: Path, weights: Path, config: dict) -> None:
    """A .keras archive (stored, as Keras writes it) around a model.weights.h5."""
    with zipfile.ZipFile(FIXTURES / "keras3/sequential_mlp.keras") as src, zipfile.ZipFile(path, "w") as dst:
        dst.writestr("metadata.json", src.read("metadata.json"))
        dst.writestr("config.json", json.dumps(config))
        dst.write(weights, "model.weights.h5")


def write_large(tmp: Path, mb: int) -> None:
    """The large models of `large_cases` (run in a child process)."""
    onnx_path, h5_path = tmp / f"mlp_{mb}mb.onnx", tmp / f"mlp_{mb}mb.h5"
    write_onnx(onnx_path, mb)
    write_legacy_h5(h5_path, mb)
    with zipfile.ZipFile(FIXTURES / "keras3/sequential_mlp.keras") as src:
        config, dense = scaled_config(json.loads(src.read("config.json")), layer_count(mb))
    weights_path, keras_path = tmp / f"mlp_{mb}mb.weights.h5", tmp / f"mlp_{mb}mb.keras"
    write_keras3_weights(weights_path, config, dense)
    write_keras_zip(keras_path, weights_path, config)


def large_cases(tmp: Path, mb: int) -> list[tuple[str, Path]]:
    """(format, path) of the generated models, written into `tmp` by a child process."""
    subprocess.run([sys.executable, __file__, "--generate", str(tmp), "--mb", str(mb)], check=True)
    onnx_path, h5_path = tmp / f"mlp_{mb}mb.onnx", tmp / f"mlp_{mb}mb.h5"
    weights_path, keras_path = tmp / f"mlp_{mb}mb.weights.h5", tmp / f"mlp_{mb}mb.keras"
    return [(f"ONNX, {mb} MB", onnx_path), (f"Keras 3 .h5, {mb} MB", h5_path),
            (f"Keras 3 .weights.h5, {mb} MB", weights_path), (f".keras, {mb} MB", keras_path)]  # fmt: skip


# --- report -----------------------------------------------------------------------------------------


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def total_params(stdout: str) -> str:
    line = next((ln for ln in stdout.splitlines() if "Total params:" in ln), "")
    return line.split("Total params:", 1)[1].split("(")[0].strip() if line else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mb", type=int, default=100, help="size of the generated models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/inspect_speed.md")
    parser.add_argument("--generate", type=Path, default=None, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args()
    if args.generate:
        write_large(args.generate, args.mb)
        return 0
    command, shown = modeltool_command()
    rows = []
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="inspect_speed_"))
    try:
        cases = [(fmt, FIXTURES / rel) for fmt, rel in FIXTURE_CASES] + large_cases(tmp, args.mb)
        floor = {"python -c pass": [sys.executable, "-c", "pass"], "modeltool --help": [*command, "--help"]}
        for label, cmd in floor.items():
            seconds, peak, rc, _ = best_of(cmd, args.repeat)
            rows.append((f"({label})", "-", "-", seconds, peak, "-", rc))
        for fmt, path in cases:
            seconds, peak, rc, out = best_of([*command, "inspect", str(path)], args.repeat)
            shown_path = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
            rows.append((fmt, str(shown_path), f"{size_of(path) / 1e6:.2f}", seconds, peak, total_params(out), rc))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()

    header = ["Format", "File", "Size (MB)", f"Best of {args.repeat} (s)", "Peak RSS (MB)", "Params", "under 0.3 s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for fmt, path, size, seconds, peak, params, rc in rows:
        verdict = "-" if fmt.startswith("(") else ("yes" if seconds < LIMIT_S and rc == 0 else "NO")
        status = "" if rc == 0 else f" (exit {rc})"
        lines.append(f"| {fmt} | {path} | {size} | {seconds:.3f}{status} | {peak:.0f} | {params} | {verdict} |")
    inspected = [r for r in rows if not r[0].startswith("(")]
    passed = sum(1 for r in inspected if r[3] < LIMIT_S and r[6] == 0)
    context = (
        f"`modeltool inspect PATH` in a fresh process per run ({shown}); best of {args.repeat} wall times. "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load_before[0]:.2f} before / {load_after[0]:.2f} after. "
        f"{passed} of {len(inspected)} inspects under {LIMIT_S} s."
    )
    table = "\n".join(lines)
    print(table)
    print()
    print(context)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"# `modeltool inspect` speed (issue 12)\n\n{context}\n\n{table}\n", encoding="utf-8")
    print(f"\nwritten: {args.out}")
    return 0 if passed == len(inspected) else 1


if __name__ == "__main__":
    sys.exit(main())
