"""`modeltool verify A B`: a numerically wrong target fails (exit 1); unpairable models exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeltool.feeds import random_feed
from modeltool.ir import TensorSpec
from modeltool.verify import TOLERANCES, Tolerance, compare_arrays
from tests.conftest import FIXTURES, run_cli

SRC = FIXTURES / "keras3" / "functional_multi_io.keras"


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory):
    from modeltool.convert import convert

    tmp = tmp_path_factory.mktemp("verify")
    good = tmp / "good.onnx"
    assert convert(SRC, str(good)).passed
    return good, tmp


def test_verify_matching_models_exit_0(onnx_pair):
    good, _ = onnx_pair
    proc = run_cli("verify", SRC, good, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] and {o["name"] for o in report["outputs"]} == {"class_out", "reg_out"}


def test_perturbed_weight_makes_verify_exit_1(onnx_pair):
    import onnx
    from onnx import numpy_helper

    good, tmp = onnx_pair
    model = onnx.load(good)
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    value = numpy_helper.to_array(init).copy()
    value.flat[0] += 0.5
    init.CopyFrom(numpy_helper.from_array(value, init.name))
    bad = tmp / "bad.onnx"
    onnx.save(model, bad)
    proc = run_cli("verify", SRC, bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and "result: FAILED" in proc.stdout


def test_unpairable_models_exit_2(onnx_pair):
    good, _ = onnx_pair
    proc = run_cli("verify", FIXTURES / "keras3" / "sequential_mlp.keras", good)
    assert proc.returncode == 2
    assert "cannot pair inputs" in proc.stderr


def test_tf2onnx_fixture_against_keras_source():
    """The ONNX file the fixtures script wrote (tf2onnx directly) against its Keras source."""
    proc = run_cli("verify", FIXTURES / "keras3" / "conv_bn.keras", FIXTURES / "graphs" / "conv_bn.onnx")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "paired by position" in proc.stdout  # tf2onnx named the output Identity:0, Keras logits


def test_embedding_inputs_stay_in_range():
    from modeltool.loaders import load

    ir = load(FIXTURES / "keras3" / "rnn_text.keras")
    feed = random_feed([TensorSpec(ir.inputs[0].name, (None, 12), "int32")], ir=ir, seed=5, batch=64)
    dim = next(n for _, n in ir.graph.walk() if n.op == "Embedding").config["input_dim"]
    assert feed[ir.inputs[0].name].max() < dim and feed[ir.inputs[0].name].min() >= 0


def test_noise_floor_separates_instability_from_mismatch():
    ref = np.array([1e5, -2e5, 3.0])
    out = ref + np.array([2.0, -3.0, 0.0])  # beyond atol/rtol, within 10x a noise floor of 1.0
    tol = Tolerance(1e-6, 1e-9)
    assert compare_arrays(ref, out, tol, noise=1.0)["passed"]
    assert not compare_arrays(ref, out, tol, noise=0.01)["passed"]
    assert not compare_arrays(ref, out, tol, noise=None)["passed"]


def test_nan_mismatch_fails_even_when_cosine_is_high():
    ref = np.ones(100)
    out = ref.copy()
    out[3] = np.nan
    assert not compare_arrays(ref, out, TOLERANCES["int8"], noise=1.0)["passed"]


@pytest.mark.parametrize("name", ["sequential_mlp", "conv_bn"])
def test_graph_fixtures_match_their_keras_source(name):
    """The fixtures' TFLite files (TFLiteConverter) compute what Keras computes; an earlier
    generation via from_concrete_functions read uninitialized variables and verify caught it."""
    graphs = FIXTURES / "graphs"
    for target, extra in ((f"{name}.tflite", []), (f"{name}_dynamic.tflite", ["--quantized", "dynamic"])):
        proc = run_cli("verify", FIXTURES / "keras3" / f"{name}.keras", graphs / target, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_verify_detects_a_quantized_target(tmp_path) -> None:
    """`verify` against an int8 TFLite file picks the int8 tolerance itself (as `check` reads the
    kind from the file); the float tolerance would fail it."""
    from modeltool.convert import convert
    from modeltool.options import ConvertOptions, VerifyOptions
    from modeltool.verify import verify_files

    src = FIXTURES / "keras3/conv_bn.keras"
    calibration = {"pixels": np.random.default_rng(0).standard_normal((16, 16, 16, 3)).astype("float32")}
    np.savez(tmp_path / "cal.npz", **calibration)
    options = ConvertOptions(quantize="int8", calibration=str(tmp_path / "cal.npz"))
    assert convert(src, str(tmp_path / "q.tflite"), options).written
    report = verify_files(src, tmp_path / "q.tflite")
    assert report.passed, report.render()
    assert report.tolerance == TOLERANCES["int8"]
    assert any("int8" in w for w in report.warnings)
    strict = verify_files(src, tmp_path / "q.tflite", VerifyOptions(quantized="float16"))
    assert strict.tolerance == TOLERANCES["float16"]
    # the float tolerance fails the same file: the detected kind is what lets it pass
    as_float = verify_files(src, tmp_path / "q.tflite", VerifyOptions(atol=TOLERANCES["float32"].atol,
                                                                       rtol=TOLERANCES["float32"].rtol,
                                                                       quantized="float32"))  # fmt: skip
    assert as_float.tolerance == TOLERANCES["float32"] and not as_float.passed, as_float.render()
