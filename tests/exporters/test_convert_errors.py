"""Conversions that must fail cleanly: exit 2 with one line, nothing left at DST."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.conftest import FIXTURES, run_cli
from tests.exporters.conftest import CUSTOM_OBJECTS

MLP = FIXTURES / "keras3" / "sequential_mlp.keras"


def _one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("modeltool:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_existing_destination_needs_force(tmp_path):
    dst = tmp_path / "m.onnx"
    dst.write_bytes(b"keep me")
    proc = run_cli("convert", MLP, dst, "-q")
    assert proc.returncode == 2
    assert "--force" in _one_error_line(proc)
    assert dst.read_bytes() == b"keep me"
    proc = run_cli("convert", MLP, dst, "-q", "--force")
    assert proc.returncode == 0, proc.stderr
    assert dst.read_bytes() != b"keep me"


def test_unknown_target_is_usage_error(tmp_path):
    proc = run_cli("convert", MLP, tmp_path / "m.xyz")
    assert proc.returncode == 2
    assert "--to" in _one_error_line(proc)


def test_custom_layer_needs_custom_objects(tmp_path):
    proc = run_cli("convert", FIXTURES / "keras3" / "custom_layer.keras", tmp_path / "m.onnx")
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert "scaled" in line and "--custom-objects" in line
    assert not (tmp_path / "m.onnx").exists()
    ok = run_cli(
        "convert",
        FIXTURES / "keras3" / "custom_layer.keras",
        tmp_path / "m.onnx",
        "--custom-objects",
        CUSTOM_OBJECTS,
        "-q",
    )
    assert ok.returncode == 0, ok.stderr


def test_lambda_needs_unsafe_and_is_never_run(tmp_path):
    """A Lambda that would write a file: without --unsafe nothing runs and the layer is named."""
    import tf_keras

    marker = tmp_path / "ran.txt"
    where = str(marker)
    inp = tf_keras.Input((3,), name="x")
    out = tf_keras.layers.Lambda(lambda t: (open(where, "w").close(), t)[1] * 2, name="evil")(inp)
    model = tf_keras.Model(inp, out)
    marker.unlink(missing_ok=True)  # building the model calls the function once
    model.save(tmp_path / "lam.h5")
    proc = run_cli("convert", tmp_path / "lam.h5", tmp_path / "lam.onnx")
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert "'evil'" in line and "--unsafe" in line
    assert not marker.exists() and not (tmp_path / "lam.onnx").exists()


def test_weights_only_file_is_not_convertible(tmp_path):
    proc = run_cli("convert", FIXTURES / "keras3" / "sequential_mlp.weights.h5", tmp_path / "m.onnx")
    assert proc.returncode == 2
    assert "architecture" in _one_error_line(proc)


def test_cuda_without_gpu_provider_is_clear(tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA: the error path cannot be reached")
    proc = run_cli("convert", MLP, tmp_path / "m.onnx", "--device", "cuda")
    assert proc.returncode == 2
    assert "gpu" in _one_error_line(proc)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_input_shape_option(tmp_path):
    proc = run_cli("convert", MLP, tmp_path / "m.onnx", "--input-shape", "nosuch:1,2")
    assert proc.returncode == 2
    assert "nosuch" in _one_error_line(proc)


def test_no_temporary_files_left_after_failure(tmp_path):
    run_cli("convert", FIXTURES / "keras3" / "custom_layer.keras", tmp_path / "m.tflite")
    assert os.listdir(tmp_path) == []


def test_json_report(tmp_path):
    import json

    proc = run_cli("convert", MLP, tmp_path / "m.onnx", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["passed"] and data["written"] and data["target"] == "onnx"
    assert set(data["timings"]) >= {"load", "rebuild", "convert", "verify"}
    assert data["verification"]["outputs"][0]["max_abs"] is not None
    assert data["size_after"] == (tmp_path / "m.onnx").stat().st_size


def test_user_inputs_npz(tmp_path):
    np.savez(tmp_path / "in.npz", np.random.default_rng(1).standard_normal((5, 16)).astype("float32"))
    proc = run_cli("convert", MLP, tmp_path / "m.onnx", "--input", tmp_path / "in.npz", "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"input_source": "in.npz"' in proc.stdout


def test_calibration_keyed_by_unknown_names_is_an_error(tmp_path):
    """An int8 calibration (or --input) file whose arrays name no input would be fed to the wrong
    input or ignored: exit 2 naming the arrays and the inputs."""
    np.savez(tmp_path / "cal.npz", images=np.zeros((4, 16), "float32"))
    proc = run_cli("convert", MLP, tmp_path / "m.tflite", "--quantize", "int8", "--calibration", tmp_path / "cal.npz")
    assert proc.returncode == 2 and "images" in proc.stderr and "name no input" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.tflite").exists()


def test_tensorflow_target_with_keras_on_jax_says_which_backend(tmp_path):
    """TFLite's TensorFlow route writes from a TensorFlow trace: with KERAS_BACKEND=jax chosen, one
    line says so (it was an internal error from inside Keras); the direct routes still work on JAX."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    src = FIXTURES / "keras3" / "conv_bn.keras"
    done = run_cli("convert", src, tmp_path / "m.tflite", "--via", "tf", env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Keras runs on jax here (KERAS_BACKEND=jax)" in lines[0], done.stderr
    assert not (tmp_path / "m.tflite").exists()
    assert run_cli("convert", src, tmp_path / "m.onnx", env=env).returncode == 0
    assert run_cli("convert", src, tmp_path / "m.tflite", env=env).returncode == 0
