"""Every row of docs/keras-semantics.md: a model written by tf_keras (Keras 2), rebuilt by
modeltool as Keras 3, computes what tf_keras computes. Expected numbers come from tf_keras in the
test's own process, from the model object that wrote the file."""

from __future__ import annotations

import numpy as np
import pytest

from modeltool.errors import UnsupportedError


def _rows():
    """id -> (builder(k) -> model, input shape, integer input bound or None)."""

    def seq(k, shape, *layers):
        return k.Sequential([k.layers.InputLayer(input_shape=shape), *layers])

    return {
        "hard_sigmoid-activation": (lambda k: seq(k, (6,), k.layers.Activation("hard_sigmoid")), (6,), None),
        "hard_sigmoid-dense": (lambda k: seq(k, (6,), k.layers.Dense(4, activation="hard_sigmoid")), (6,), None),
        "hard_sigmoid-lstm": (
            lambda k: seq(k, (5, 3), k.layers.LSTM(4, recurrent_activation="hard_sigmoid")), (5, 3), None),
        "hard_sigmoid-gru": (
            lambda k: seq(k, (5, 3), k.layers.GRU(4, recurrent_activation="hard_sigmoid", reset_after=False)),
            (5, 3), None),
        "convlstm2d-default": (lambda k: seq(k, (3, 6, 6, 2), k.layers.ConvLSTM2D(3, 3, padding="same")),
                               (3, 6, 6, 2), None),
        "gru-reset_after-false": (lambda k: seq(k, (5, 3), k.layers.GRU(4, reset_after=False)), (5, 3), None),
        "thresholded_relu": (lambda k: seq(k, (6,), k.layers.ThresholdedReLU(theta=0.5)), (6,), None),
        "leaky_relu-alpha": (lambda k: seq(k, (6,), k.layers.LeakyReLU(alpha=0.1)), (6,), None),
        "gelu-exact": (lambda k: seq(k, (6,), k.layers.Dense(4, activation="gelu")), (6,), None),
        "flatten-channels_first": (
            lambda k: seq(k, (4, 3, 2), k.layers.Flatten(data_format="channels_first"), k.layers.Dense(3)),
            (4, 3, 2), None),
        "upsampling-bilinear": (
            lambda k: seq(k, (4, 4, 2), k.layers.UpSampling2D(2, interpolation="bilinear")), (4, 4, 2), None),
        "masking-lstm-sequences": (
            lambda k: seq(k, (5, 3), k.layers.Masking(0.0), k.layers.LSTM(4, return_sequences=True)), (5, 3), None),
        "embedding-mask-pooling": (
            lambda k: seq(k, (6,), k.layers.Embedding(10, 4, mask_zero=True), k.layers.GlobalAveragePooling1D()),
            (6,), 10),
        "bidirectional-concat": (
            lambda k: seq(k, (5, 3), k.layers.Bidirectional(k.layers.LSTM(3, return_sequences=True))), (5, 3), None),
        "batchnorm-axis-list": (
            lambda k: seq(k, (4, 4, 2), k.layers.BatchNormalization(axis=[3], epsilon=1e-2)), (4, 4, 2), None),
        "relu-max_value": (lambda k: seq(k, (6,), k.layers.ReLU(max_value=0.5, threshold=0.1)), (6,), None),
        "softmax-axis": (lambda k: seq(k, (3, 4), k.layers.Softmax(axis=1)), (3, 4), None),
    }  # fmt: skip


ROWS = _rows()


def _inputs(shape, bound):
    rng = np.random.default_rng(5)
    if bound:
        x = rng.integers(0, bound, size=(3, *shape)).astype("int32")
        x[:, -2:] = 0  # masked positions
        return x
    x = (rng.standard_normal((3, *shape)) * 3).astype("float32")
    if len(shape) == 2:
        x[:, -2:, :] = 0.0  # masked timesteps for Masking rows
    return x


@pytest.mark.parametrize("row", sorted(ROWS))
def test_rebuild_computes_what_tf_keras_computes(row, tmp_path):
    import tf_keras

    from modeltool.keras.rebuild import build
    from modeltool.loaders import load

    builder, shape, bound = ROWS[row]
    tf_keras.utils.set_random_seed(3)
    model = builder(tf_keras)
    for w in model.weights:  # non-trivial statistics for the BatchNormalization row
        if "moving" in w.name:
            w.assign(np.abs(np.random.default_rng(1).standard_normal(w.shape)).astype("float32") + 0.5)
    path = tmp_path / f"{row}.h5"
    model.save(path, save_format="h5")
    x = _inputs(shape, bound)
    want = model(x, training=False).numpy()
    got = np.asarray(build(load(path))(x, training=False))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_keras1_batchnorm_modes_are_refused():
    from modeltool.keras.semantics import refuse_lost_semantics

    cfg = {"class_name": "Sequential", "config": [
        {"class_name": "BatchNormalization", "config": {"name": "bn", "mode": 2, "epsilon": 1e-3}}]}  # fmt: skip
    with pytest.raises(UnsupportedError, match="mode=2"):
        refuse_lost_semantics(cfg)
    cfg["config"][0]["config"]["mode"] = 0
    refuse_lost_semantics(cfg)


def test_legacy_hard_sigmoid_differs_from_keras3s():
    """The row above can fail: Keras 3's hard_sigmoid is another function."""
    import keras

    from modeltool.keras.semantics import legacy_hard_sigmoid

    x = np.linspace(-4, 4, 17).astype("float32")
    ours = np.asarray(legacy_hard_sigmoid(x))
    np.testing.assert_allclose(ours, np.clip(0.2 * x + 0.5, 0, 1), atol=1e-7)
    assert np.abs(np.asarray(keras.activations.hard_sigmoid(x)) - ours).max() > 0.05


def test_compile_settings_in_a_model_config_are_dropped_with_a_note(tmp_path):
    """Some Keras 3 versions wrote compile settings (jit_compile, ...) into the model config."""
    import json
    import zipfile

    from modeltool.keras.rebuild import build
    from tests.conftest import FIXTURES

    src, dst = FIXTURES / "keras3" / "functional_multi_io.keras", tmp_path / "jit.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                cfg = json.loads(data)
                cfg["config"].update(jit_compile=True, steps_per_execution=4)
                data = json.dumps(cfg).encode()
            zout.writestr(item, data)
    from modeltool.loaders import load

    notes: list[str] = []
    build(load(dst), notes=notes)
    assert any("jit_compile=True" in n and "steps_per_execution=4" in n for n in notes), notes


def test_legacy_hard_sigmoid_exports_as_onnx_hard_sigmoid(tmp_path):
    """The Keras 2 hard sigmoid reaches ONNX as the op that defines it, HardSigmoid(0.2, 0.5), and
    the file computes what tf_keras computes."""
    import onnx
    import onnxruntime as ort
    import tf_keras

    from modeltool.convert import convert

    tf_keras.utils.set_random_seed(3)
    model = tf_keras.Sequential([tf_keras.Input((6,)), tf_keras.layers.Dense(4, activation="hard_sigmoid")])
    model.save(tmp_path / "m.h5", save_format="h5")
    assert convert(tmp_path / "m.h5", str(tmp_path / "m.onnx")).written
    nodes = [n for n in onnx.load(str(tmp_path / "m.onnx")).graph.node if n.op_type == "HardSigmoid"]
    assert len(nodes) == 1
    attrs = {a.name: a.f for a in nodes[0].attribute}
    assert attrs == pytest.approx({"alpha": 0.2, "beta": 0.5})
    x = _inputs((6,), None)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, model(x, training=False).numpy(), atol=1e-6)
