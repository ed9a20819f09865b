"""extract: the written sub-model reproduces the original model's intermediate activations, as
Keras computes them from the original (our own fixtures, loaded by Keras: trusted files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeltool.errors import UsageError
from modeltool.ops.extract import extract
from tests.conftest import FIXTURES, run_cli

RNG = np.random.default_rng(0)


def _keras():
    import keras

    return keras


def activation(model, name: str, x):
    keras = _keras()
    return np.asarray(keras.Model(model.inputs, model.get_layer(name).output)(x))


def test_backbone_features_to_keras(tmp_path) -> None:
    keras = _keras()
    report = extract(str(FIXTURES / "keras3/conv_bn.keras"), "gap", str(tmp_path / "backbone.keras"))
    assert report.written and report.passed and report.outputs == ["gap"]
    original = keras.saving.load_model(FIXTURES / "keras3/conv_bn.keras")
    sub = keras.saving.load_model(tmp_path / "backbone.keras")
    assert "logits" not in [layer.name for layer in sub.layers]
    x = RNG.standard_normal((3, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(sub(x)), activation(original, "gap", x), rtol=1e-6, atol=1e-6)


def test_between_two_layers_to_onnx(tmp_path) -> None:
    import onnxruntime as ort

    keras = _keras()
    report = extract(str(FIXTURES / "keras3/conv_bn.keras"), "gap,gmp", str(tmp_path / "mid.onnx"), inputs="relu1")
    assert report.written and report.passed and report.inputs == ["relu1"]
    assert report.conversion is not None and report.conversion.passed
    original = keras.saving.load_model(FIXTURES / "keras3/conv_bn.keras")
    x = RNG.standard_normal((2, 16, 16, 3)).astype("float32")
    sess = ort.InferenceSession(str(tmp_path / "mid.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["relu1"]
    assert sess.get_inputs()[0].shape[1:] == [8, 8, 8]
    gap, gmp = sess.run(["gap", "gmp"], {"relu1": activation(original, "relu1", x)})
    np.testing.assert_allclose(gap, activation(original, "gap", x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gmp, activation(original, "gmp", x), rtol=1e-4, atol=1e-5)


def test_layer_inside_a_nested_model(tmp_path) -> None:
    keras = _keras()
    report = extract(str(FIXTURES / "keras3/nested.keras"), "encoder/enc_dense", str(tmp_path / "enc.keras"))
    assert report.written and report.passed
    original = keras.saving.load_model(FIXTURES / "keras3/nested.keras")
    x = RNG.standard_normal((4, 6)).astype("float32")
    encoder = original.get_layer("encoder")
    entering = activation(original, "inner_block", x)
    expected = np.asarray(keras.Model(encoder.inputs, encoder.get_layer("enc_dense").output)(entering))
    sub = keras.saving.load_model(tmp_path / "enc.keras")
    np.testing.assert_allclose(np.asarray(sub(x)), expected, rtol=1e-6, atol=1e-6)


def test_keras2_nested_cut_inside_to_h5(tmp_path) -> None:
    keras = _keras()
    report = extract(str(FIXTURES / "keras2/nested.h5"), "head", str(tmp_path / "tail.h5"),
                     inputs="inner_block/inner_dense_1")  # fmt: skip
    assert report.written and report.passed and report.inputs == ["inner_dense_1"]
    sub = keras.saving.load_model(tmp_path / "tail.h5", compile=False)
    assert sub.inputs[0].shape[1:] == (8,)
    import modeltool

    full = modeltool.load(tmp_path / "tail.h5")
    assert [n.name for n in full.layers] == ["inner_dense_1", "inner_dense_2", "enc_dense", "head"]


def test_shared_layer_calls_and_rnn(tmp_path) -> None:
    report = extract(str(FIXTURES / "keras3/shared_layers.keras"), "shared_dense@1,diff", str(tmp_path / "s.keras"))
    assert report.written and report.passed
    with pytest.raises(UsageError, match="shared .2 calls.: name the call"):
        extract(str(FIXTURES / "keras3/shared_layers.keras"), "shared_dense", str(tmp_path / "t.keras"))
    rnn = extract(str(FIXTURES / "keras3/rnn_text.keras"), "bilstm", f"{tmp_path}/rnn_sm/")
    assert rnn.written and rnn.passed and rnn.conversion.verification.passed


def test_cli_errors_and_json(tmp_path) -> None:
    result = run_cli("extract", FIXTURES / "keras3/conv_bn.keras", "--outputs", "nope", "-o", tmp_path / "x.keras")
    assert result.returncode == 2 and "no layer 'nope'" in result.stderr and "conv1" in result.stderr
    assert not (tmp_path / "x.keras").exists()
    result = run_cli("extract", FIXTURES / "keras3/conv_bn.keras", "--outputs", "bn1", "-o", tmp_path / "b.keras",
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["passed"] and data["outputs"] == ["bn1"] and data["verification"]["outputs"][0]["max_abs"] == 0
    result = run_cli("extract", FIXTURES / "keras3/conv_bn.keras", "--outputs", "bn1", "-o", tmp_path / "b.keras")
    assert result.returncode == 2 and "exists" in result.stderr
    result = run_cli("extract", FIXTURES / "graphs/conv_bn.onnx", "--outputs", "x", "-o", tmp_path / "o.keras")
    assert result.returncode == 2 and "needs a Keras model" in result.stderr


def test_nested_model_as_the_output(tmp_path) -> None:
    """An autoencoder's encoder, a Model used as a layer, extracted on its own (issue: "Output with
    path '' is not connected to 'inputs'")."""
    import onnxruntime as ort

    keras = _keras()
    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    code = keras.layers.Dense(3, name="code")(keras.layers.Flatten()(keras.layers.Conv2D(4, 3, name="c1")(image)))
    encoder = keras.Model(image, code, name="encoder")
    latent = keras.Input((3,), name="latent")
    decoder = keras.Model(latent, keras.layers.Reshape((8, 8, 1))(keras.layers.Dense(64)(latent)), name="decoder")
    outer = keras.Input((8, 8, 1), name="x")
    keras.Model(outer, decoder(encoder(outer)), name="autoencoder").save(tmp_path / "ae.keras")
    report = extract(str(tmp_path / "ae.keras"), "encoder", str(tmp_path / "enc.onnx"))
    assert report.written and report.passed, report.render()
    x = RNG.standard_normal((2, 8, 8, 1)).astype("float32")
    sess = ort.InferenceSession(str(tmp_path / "enc.onnx"), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, np.asarray(encoder(x)), rtol=1e-4, atol=1e-5)
