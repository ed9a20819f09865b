"""`modeltool inspect` through the real console entry point: output, JSON schema, exit codes."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.conftest import FIXTURES, manifest, run_cli

FORMATS = [
    FIXTURES / "keras3/functional_multi_io.keras",
    FIXTURES / "keras3/functional_multi_io.h5",
    FIXTURES / "keras3/functional_multi_io.weights.h5",
    FIXTURES / "keras3/functional_multi_io.json",
    FIXTURES / "keras2/functional_multi_io.h5",
    FIXTURES / "keras2/functional_multi_io_weights.h5",
    FIXTURES / "keras2/functional_multi_io.yaml",
    FIXTURES / "graphs/conv_bn.onnx",
    FIXTURES / "graphs/conv_bn.tflite",
]


def test_text_summary_like_keras() -> None:
    result = run_cli("inspect", FIXTURES / "keras3/functional_multi_io.keras")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    expected = manifest()["keras3/functional_multi_io"]
    for layer in expected["layers"]:
        assert layer["name"] in out
    assert f"Total params: {expected['params']['total']:,}" in out
    assert "Layer (type)" in out and "Connected to" in out
    assert "image  (None, 12, 12, 3)  float32" in out


@pytest.mark.parametrize("path", FORMATS, ids=lambda p: p.name)
def test_json_schema(path) -> None:
    result = run_cli("inspect", path, "--json", "--weights")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("format", "inputs", "outputs", "params", "layers", "weights"):
        assert key in data
    assert set(data["params"]) >= {"total", "trainable", "non_trainable"}
    for spec in data["inputs"] + data["outputs"]:
        assert set(spec) >= {"name", "shape", "dtype"}
    for layer in data["layers"]:
        assert set(layer) >= {"name", "class_name", "output_shape", "params", "inbound"}
    for w in data["weights"]:
        assert set(w) >= {"name", "layer", "shape", "dtype"}
    if data["weights"]:
        assert sum(_prod(w["shape"]) for w in data["weights"]) == data["params"]["total"]


def _prod(shape: list) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_unknown_dims_are_null() -> None:
    data = json.loads(run_cli("inspect", FIXTURES / "keras2/rnn_text.h5", "--json").stdout)
    assert data["inputs"] == [{"name": "tokens", "shape": [None, 12], "dtype": "int32"}]


def test_stats_match_numpy() -> None:
    import h5py
    import numpy as np

    path = FIXTURES / "keras2/conv_bn.h5"
    data = json.loads(run_cli("inspect", path, "--json", "--weights", "--stats").stdout)
    with h5py.File(path) as f:
        kernel = f["model_weights/logits/logits/kernel:0"][()]
    w = next(w for w in data["weights"] if w["name"] == "logits/kernel")
    assert w["stats"]["min"] == pytest.approx(float(kernel.min()))
    assert w["stats"]["max"] == pytest.approx(float(kernel.max()))
    assert w["stats"]["mean"] == pytest.approx(float(kernel.mean()), rel=1e-6)
    assert w["stats"]["std"] == pytest.approx(float(np.std(kernel.astype(np.float64))), rel=1e-6)
    assert w["stats"]["nan"] == 0 and w["stats"]["inf"] == 0


def test_stats_count_nan_and_inf(tmp_path) -> None:
    import h5py
    import numpy as np

    path = tmp_path / "nan.h5"
    shutil.copy(FIXTURES / "keras2/sequential_mlp.h5", path)
    with h5py.File(path, "r+") as f:
        ds = f["model_weights/hidden/hidden/bias:0"]
        values = ds[()]
        values[:3] = np.nan
        values[3] = np.inf
        ds[...] = values
    data = json.loads(run_cli("inspect", path, "--layer", "hidden", "--stats", "--json").stdout)
    bias = next(w for w in data["weights"] if w["role"] == "bias")
    assert (bias["stats"]["nan"], bias["stats"]["inf"]) == (3, 1)


def test_layer_by_name_and_index() -> None:
    path = FIXTURES / "keras3/shared_layers.keras"
    by_name = json.loads(run_cli("inspect", path, "--layer", "shared_dense", "--json").stdout)
    assert by_name["class_name"] == "Dense"
    assert by_name["inbound"] == [["left"], ["right"]]  # a shared layer: two calls
    assert sorted(by_name["outbound"]) == ["diff", "prod"]
    assert [w["role"] for w in by_name["weights"]] == ["kernel", "bias"]
    assert by_name["config"]["units"] == 8
    by_index = json.loads(run_cli("inspect", path, "--layer", "2", "--json").stdout)
    assert by_index["name"] == "shared_dense"
    text = run_cli("inspect", path, "--layer", "shared_dense")
    assert "outbound" in text.stdout and text.returncode == 0


def test_nested_layer_path() -> None:
    path = FIXTURES / "keras3/nested.keras"
    detail = json.loads(run_cli("inspect", path, "--layer", "inner_block/inner_dense_1", "--json").stdout)
    assert detail["path"] == "inner_block/inner_dense_1"
    assert [tuple(w["shape"]) for w in detail["weights"]] == [(6, 8), (8,)]


def test_custom_layer_flagged() -> None:
    out = run_cli("inspect", FIXTURES / "keras3/custom_layer.json").stdout
    assert "Custom layer scaled (ScaledDense)" in out
    assert "Total params: unknown" in out


BAD = {
    "missing.h5": None,
    "empty.h5": b"",
    "random.h5": os.urandom(2048),
    "random.keras": os.urandom(2048),
    "random.json": os.urandom(2048),
    "random.yaml": os.urandom(2048),
    "random.onnx": os.urandom(2048),
    "random.tflite": os.urandom(2048),
    "random.weights.h5": os.urandom(2048),
    "broken.json": b'{"class_name": "Sequential", "config": [',
    "unknown_class.json": b'{"class_name": "Frobnicator", "config": {}}',
    "bad_layer.json": b'{"class_name": "Sequential", "config": {"layers": [{"config": {}}]}}',
    "python_tag.yaml": b"class_name: !!python/object/apply:os.system ['echo pwned']\nconfig: {}\n",
}


def _truncations() -> dict:
    out = {}
    for rel in ("keras3/conv_bn.keras", "keras2/conv_bn.h5", "graphs/conv_bn.onnx", "graphs/conv_bn.tflite",
                "keras3/conv_bn.weights.h5"):  # fmt: skip
        data = (FIXTURES / rel).read_bytes()
        name = rel.split("/")[1]
        for frac in (0.1, 0.5, 0.9):
            out[f"cut{int(frac * 100)}_{name}"] = data[: int(len(data) * frac)]
    return out


@pytest.mark.parametrize("name", sorted({**BAD, **_truncations()}))
def test_bad_input_exit_2_one_line(tmp_path, name) -> None:
    content = {**BAD, **_truncations()}[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = run_cli("inspect", path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert name in lines[0]
    assert not result.stdout


def test_debug_shows_traceback(tmp_path) -> None:
    path = tmp_path / "empty.keras"
    path.write_bytes(b"")
    result = run_cli("inspect", path, "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_unknown_layer_name_exit_2() -> None:
    result = run_cli("inspect", FIXTURES / "keras3/sequential_mlp.keras", "--layer", "nope")
    assert result.returncode == 2 and "no layer 'nope'" in result.stderr
