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


@pytest.mark.parametrize("out_name", ["t.keras", "t.h5", "t.weights.h5"])
def test_attention_weights_layout_for_inspect_transfer_and_diff(attention, out_name: str) -> None:
    """modeltool's own MultiHeadAttention layout (query_dense/... sub-objects) is the one Keras
    reads and writes: inspect names the weights, transfer-weights writes files Keras loads, diff
    finds the .h5 and .keras equal."""
    import keras

    import modeltool
    from modeltool.ops.diff import diff_files
    from modeltool.ops.transfer import transfer_weights

    tmp = attention["tmp"]
    model = modeltool.load(tmp / "m.keras")
    assert {w.name for w in model.weights if w.layer == "mha"} >= {"mha/query/kernel", "mha/attention_output/bias"}
    assert modeltool.load(tmp / "m.json").params.total == keras.saving.load_model(tmp / "m.keras").count_params()
    assert diff_files(str(tmp / "m.h5"), str(tmp / "m.keras")).equal
    out = tmp / out_name
    out.unlink(missing_ok=True)
    assert transfer_weights(str(tmp / "m.h5"), str(tmp / "m.json"), str(out), strict=True).complete
    if out_name.endswith(".weights.h5"):
        loaded = keras.models.model_from_json((tmp / "m.json").read_text())
        loaded.load_weights(out)
    else:
        loaded = keras.saving.load_model(out, compile=False)
    np.testing.assert_allclose(np.asarray(loaded(attention["x"])), attention["y"], rtol=1e-6, atol=1e-6)


def _masked_attention(module, path) -> tuple:
    """MultiHeadAttention with an explicit attention mask whose first query attends to nothing."""
    module.utils.set_random_seed(3)
    x = module.Input((5, 8), name="x")
    mask = module.Input((5, 5), name="mask")
    y = module.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x, attention_mask=mask)
    model = module.Model([x, mask], y)
    model.save(path)
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((2, 5, 8)).astype("float32")
    masks = (rng.random((2, 5, 5)) < 0.6).astype("float32")
    masks[:, 0, :] = 0.0  # a query with every key masked: where Keras 2 and 3 differ
    masks[:, 1:, 0] = 1.0
    return xs, masks, np.asarray(model([xs, masks]))


@pytest.mark.parametrize("writer", ["keras", "tf_keras"])
def test_fully_masked_query_as_the_writer_computes_it(tmp_path, writer: str) -> None:
    """Keras 3 zeroes the attention of a query whose every key is masked (its output is the output
    projection's bias); Keras 2 keeps the softmax of its scores. The direct route writes each."""
    import importlib

    import onnxruntime as ort

    module = importlib.import_module(writer)
    src = tmp_path / ("m.keras" if writer == "keras" else "m.h5")
    xs, masks, expected = _masked_attention(module, src)
    dst = tmp_path / "m.onnx"
    report = convert(src, str(dst), ConvertOptions(via="direct"))
    assert report.written and report.passed, report.render()
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"x": xs, "mask": masks})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # the direct TFLite route writes each too
    from ai_edge_litert.interpreter import Interpreter

    lite = tmp_path / "m.tflite"
    report = convert(src, str(lite), ConvertOptions(via="direct"))
    assert report.written and report.passed, report.render()
    runner = Interpreter(model_path=str(lite)).get_signature_runner("serving_default")
    got = list(runner(x=xs, mask=masks).values())[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
