"""TF graphs that hold recurrent loops: SavedModels of LSTM/GRU models (Keras 3 `export()`, Keras 2
`model.save(dir)`) and a TF1 `dynamic_rnn` frozen graph. The expected numbers are what TensorFlow
computes from the source file in this process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest

from modeltool.convert import ConvertOptions, convert
from modeltool.errors import UnsupportedError

RNG = np.random.default_rng(7)


def _saved_model_outputs(path: str, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    fn = tf.saved_model.load(path).signatures["serving_default"]
    (key,) = fn.structured_input_signature[1]
    (out,) = fn(**{key: tf.constant(x)}).values()
    return out.numpy()


def _onnx_outputs(path: str, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x})
    return out


@pytest.fixture(scope="module")
def rnn_saved_models(tmp_path_factory) -> dict[str, str]:
    import keras
    import tf_keras

    out = tmp_path_factory.mktemp("rnn_sm")
    keras.utils.set_random_seed(3)
    x = keras.Input((7, 3), name="seq")
    keras.Model(x, keras.layers.Dense(2)(keras.layers.LSTM(5)(x))).export(str(out / "k3_lstm"), verbose=False)
    tf_keras.utils.set_random_seed(3)
    x2 = tf_keras.Input((6, 4), name="x")
    k2 = tf_keras.Model(x2, tf_keras.layers.Dense(3)(tf_keras.layers.GRU(5)(x2)))
    k2.save(str(out / "k2_gru"), save_format="tf")
    return {"k3_lstm": str(out / "k3_lstm"), "k2_gru": str(out / "k2_gru")}


@pytest.mark.parametrize("name,shape", [("k3_lstm", (2, 7, 3)), ("k2_gru", (2, 6, 4))])
def test_rnn_saved_model_to_onnx_matches_tensorflow(tmp_path, rnn_saved_models, name: str, shape: tuple) -> None:
    """Frozen with its While loop kept functional, so tf2onnx writes an ONNX Loop (lowered, the
    loop's TensorListReserve was left behind as an invalid op)."""
    src = rnn_saved_models[name]
    report = convert(src, str(tmp_path / "m.onnx"))
    assert report.written and report.passed, report.render()
    x = RNG.standard_normal(shape).astype("float32")
    np.testing.assert_allclose(_onnx_outputs(str(tmp_path / "m.onnx"), x), _saved_model_outputs(src, x),
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_rnn_saved_model_to_builtin_tflite_says_why_not(tmp_path, rnn_saved_models) -> None:
    """TFLite lowers a loop's tensor lists to builtin ops only when their element shapes are static,
    which a saved loop (traced with an open batch) does not state: a clear error with the ways out."""
    with pytest.raises(UnsupportedError, match="--allow-flex"):
        convert(rnn_saved_models["k3_lstm"], str(tmp_path / "m.tflite"))
    assert not (tmp_path / "m.tflite").exists()


DYNAMIC_RNN = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tensorflow as tf
    v1 = tf.compat.v1
    v1.disable_control_flow_v2()  # TF1's own loops: TensorArrayV3, Enter/Exit/Merge/Switch
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, 5, 3], name="x")
        out, _ = v1.nn.dynamic_rnn(v1.nn.rnn_cell.BasicLSTMCell(4), x, dtype=tf.float32)
        y = tf.identity(out[:, -1], name="y")
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["y"])
            feed = np.load(sys.argv[2])["x"]
            np.save(sys.argv[3], sess.run(y, {x: feed}))
    with open(sys.argv[1], "wb") as f:
        f.write(frozen.SerializeToString())
    """
)


def test_tf1_dynamic_rnn_frozen_graph_to_onnx(tmp_path) -> None:
    """A TF1 `dynamic_rnn` (TensorArrayV3 loop) frozen graph; the reference is TF1's own session."""
    x = RNG.standard_normal((2, 5, 3)).astype("float32")
    np.savez(tmp_path / "x.npz", x=x)
    script = tmp_path / "make.py"
    script.write_text(DYNAMIC_RNN)
    pb, expected = tmp_path / "rnn.pb", tmp_path / "y.npy"
    subprocess.run([sys.executable, str(script), str(pb), str(tmp_path / "x.npz"), str(expected)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    report = convert(pb, str(tmp_path / "m.onnx"), ConvertOptions(input_data=str(tmp_path / "x.npz")))
    assert report.written and report.passed, report.render()
    np.testing.assert_allclose(_onnx_outputs(str(tmp_path / "m.onnx"), x), np.load(expected), rtol=1e-4, atol=1e-5)
    with pytest.raises(UnsupportedError, match="--allow-flex"):
        convert(pb, str(tmp_path / "m.tflite"))
