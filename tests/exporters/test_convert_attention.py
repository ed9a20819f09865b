"""Layers whose weights live in sub-objects (MultiHeadAttention's query/key/value/output dense
layers): converted from every Keras 3 container and checked against the model as Keras itself
loads it (the test's own file), not only against modeltool's rebuild."""

from __future__ import annotations

import numpy as np
import pytest

from modeltool.convert import ConvertOptions, convert
from modeltool.ops.extract import extract


@pytest.fixture(scope="module")
def attention(tmp_path_factory) -> dict:
    import keras

    keras.utils.set_random_seed(5)
    tmp = tmp_path_factory.mktemp("mha")
    inp = keras.Input((6, 8), name="tokens")
    att = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(inp, inp)
    x = keras.layers.LayerNormalization(name="ln")(keras.layers.Add(name="res")([inp, att]))
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D(name="pool")(x))
    model = keras.Model(inp, out)
    model.save(tmp / "m.keras")
    model.save(tmp / "m.h5")
    model.save_weights(tmp / "m.weights.h5")
    (tmp / "m.json").write_text(model.to_json())
    x = np.random.default_rng(0).standard_normal((2, 6, 8)).astype("float32")
    ln = keras.Model(inp, model.get_layer("ln").output)
    return {"tmp": tmp, "x": x, "y": np.asarray(model(x)), "ln": np.asarray(ln(x))}


@pytest.mark.parametrize("source", ["m.keras", "m.h5", "m.json"])
def test_attention_to_onnx_equals_keras(attention, source: str) -> None:
    import onnxruntime as ort

    tmp = attention["tmp"]
    options = ConvertOptions(weights_from=str(tmp / "m.weights.h5") if source.endswith(".json") else None)
    dst = tmp / f"{source}.onnx"
    report = convert(tmp / source, str(dst), options)
    assert report.written and report.passed, report.render()
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"tokens": attention["x"]})
    np.testing.assert_allclose(y, attention["y"], rtol=1e-4, atol=1e-5)


def test_extract_around_attention(attention) -> None:
    import keras

    tmp = attention["tmp"]
    report = extract(str(tmp / "m.keras"), "ln", str(tmp / "ln.keras"))
    assert report.written and report.passed
    sub = keras.saving.load_model(tmp / "ln.keras")
    np.testing.assert_allclose(np.asarray(sub(attention["x"])), attention["ln"], rtol=1e-5, atol=1e-6)
