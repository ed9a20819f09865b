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


def _keras3_cases(out) -> dict[str, tuple[str, object, dict]]:
    """Keras 3 recurrent models with open timesteps, each exported as a SavedModel and frozen into
    a GraphDef: {case: (path, the Keras model, {input: one sample of shape (1, T, F)})}."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keras.utils.set_random_seed(3)
    seq = keras.Input((None, 3), name="seq")
    lstm = keras.layers.LSTM(5, return_sequences=True)(seq)
    stack = keras.Model(seq, keras.layers.Dense(2)(keras.layers.GRU(4)(lstm)))
    a, b = keras.Input((None, 3), name="a"), keras.Input((None, 3), name="b")
    shared = keras.layers.LSTM(4)
    siamese = keras.Model([a, b], keras.layers.Dense(1)(keras.layers.Concatenate()([shared(a), shared(b)])))
    s2, meta = keras.Input((None, 3), name="s"), keras.Input((2,), name="meta")
    joined = keras.layers.Concatenate()([keras.layers.LSTM(4)(s2), meta])
    mixed = keras.Model([s2, meta], keras.layers.Dense(2)(joined))
    cases = {}
    for name, model in (("k3_lstm_stack", stack), ("k3_shared_lstm", siamese), ("k3_multi_input", mixed)):
        sample = {t.name: RNG.standard_normal((1, 6, *t.shape[2:]) if len(t.shape) == 3 else (1, *t.shape[1:]))
                  .astype("float32") for t in model.inputs}  # fmt: skip
        model.export(str(out / name), verbose=False)
        cases[f"{name}_savedmodel"] = (str(out / name), model, sample)
    # a frozen graph of the stacked model, its loop kept functional (as tf2onnx and TFLite take it)
    fn = tf.function(lambda x: stack(x)).get_concrete_function(tf.TensorSpec([None, None, 3], tf.float32, name="seq"))
    frozen = convert_variables_to_constants_v2(fn, lower_control_flow=False)
    (out / "stack.pb").write_bytes(frozen.graph.as_graph_def().SerializeToString())
    cases["k3_lstm_stack_frozen"] = (str(out / "stack.pb"), stack, cases["k3_lstm_stack_savedmodel"][2])
    return cases


@pytest.fixture(scope="module")
def rnn_graphs(tmp_path_factory, rnn_saved_models) -> dict[str, tuple[str, object, dict]]:
    import tf_keras

    out = tmp_path_factory.mktemp("rnn_graphs")
    cases = _keras3_cases(out)
    tf_keras.utils.set_random_seed(4)
    x = tf_keras.Input((None, 4), name="x")
    hidden = tf_keras.layers.LSTM(5, return_sequences=True)(x)
    k2 = tf_keras.Model(x, tf_keras.layers.Dense(2)(tf_keras.layers.LSTM(3)(hidden)))
    k2.save(str(out / "k2_lstm_stack"), save_format="tf")
    sample = {"x": RNG.standard_normal((1, 5, 4)).astype("float32")}
    cases["k2_lstm_stack_savedmodel"] = (str(out / "k2_lstm_stack"), k2, sample)
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda v: k2(v)).get_concrete_function(tf.TensorSpec([None, None, 4], tf.float32, name="seq"))
    (out / "k2_stack.pb").write_bytes(convert_variables_to_constants_v2(fn, lower_control_flow=False)
                                      .graph.as_graph_def().SerializeToString())  # fmt: skip
    cases["k2_lstm_stack_frozen"] = (str(out / "k2_stack.pb"), k2, {"seq": sample["x"]})
    one = {"k3_lstm": ("seq", (1, 7, 3)), "k2_gru": ("x", (1, 6, 4))}
    for name, (key, shape) in one.items():
        sample = {key: RNG.standard_normal(shape).astype("float32")}
        cases[f"{name}_savedmodel"] = (rnn_saved_models[name], None, sample)
    return cases


GRAPH_RNN_CASES = ["k3_lstm_savedmodel", "k3_lstm_stack_savedmodel", "k3_shared_lstm_savedmodel",
                   "k3_multi_input_savedmodel", "k3_lstm_stack_frozen", "k2_gru_savedmodel", "k2_lstm_stack_savedmodel",
                   "k2_lstm_stack_frozen"]


@pytest.mark.slow
@pytest.mark.parametrize("case", GRAPH_RNN_CASES)
def test_rnn_graph_to_builtin_tflite(tmp_path, rnn_graphs, case) -> None:
    """A saved or frozen recurrent loop over tensor lists becomes builtin TFLite ops: the batch is
    fixed to 1 (said), the loop's element shapes follow, timesteps stay open. Checked against the
    Keras model (or, for the SavedModels made above, TensorFlow running the file) on the same
    sample at two sequence lengths, run in LiteRT."""
    from modeltool.sources import open_runner

    src, model, sample = rnn_graphs[case]
    options = ConvertOptions(inputs="seq" if case.endswith("frozen") else None)
    report = convert(src, str(tmp_path / "m.tflite"), options)
    assert report.written and report.passed, report.render()
    assert not report.details["flex_ops"] and "tensor lists lowered" in report.details["recurrent_loop"]
    assert any("batch fixed to 1" in w for w in report.warnings), report.warnings
    first = next(iter(sample.values())).shape[1]
    open_timesteps = model is not None  # the two SavedModels of the fixture above fix theirs
    for length in (first, first + 3) if open_timesteps else (first,):
        feed = {k: (RNG.standard_normal((1, length, v.shape[2])).astype("float32") if v.ndim == 3 else v)
                for k, v in sample.items()}  # fmt: skip
        if model is not None:
            args = list(feed.values())  # in the model's input order, as `sample` was made
            expected = np.asarray(model(args if len(args) > 1 else args[0]))
        else:
            expected = _saved_model_outputs(src, next(iter(feed.values())))
        with open_runner(str(tmp_path / "m.tflite")) as runner:
            names = [s.name for s in runner.input_specs()]
            got = runner.infer({n: feed[n] if n in feed else list(feed.values())[i] for i, n in enumerate(names)})
        np.testing.assert_allclose(next(iter(got.values())), expected, rtol=1e-4, atol=1e-5)


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
    # TF1's loop (TensorArrayV3 in Enter/Exit/Merge/Switch frames) is the one TFLite's builtins cannot take
    with pytest.raises(UnsupportedError, match="--allow-flex"):
        convert(pb, str(tmp_path / "m.tflite"))
