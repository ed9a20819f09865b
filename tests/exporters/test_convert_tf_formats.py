"""TF graph sources (SavedModel, checkpoint, frozen GraphDef) to every runnable target, verified
against the source run by TensorFlow from the file; Keras sources to the new `.pb` target."""

from __future__ import annotations

import json

import numpy as np
import pytest

import modeltool
from modeltool.convert import ConvertOptions, convert
from modeltool.errors import UnsupportedError, UsageError
from tests.conftest import CORPUS, FIXTURES, manifest, requires_corpus, run_cli
from tests.exporters.conftest import assert_matches_writer

TF = FIXTURES / "tf"
SOURCES = {
    "keras3_export": ("keras3_export", {}),
    "module_sm": ("module_sm", {}),
    "keras2_sm": ("keras2_sm", {}),
    "tf1_builder": ("tf1_builder", {}),
    "tf1_ckpt": ("tf1_ckpt", {}),
    "tf1_frozen_pb": ("tf1_frozen.pb", {}),
    "tf1_frozen_pbtxt": ("tf1_frozen.pbtxt", {}),
    "keras3_ckpt": ("keras3_ckpt", {"config": str(FIXTURES / "keras3/conv_bn.json")}),
    "keras2_ckpt": ("keras2_ckpt", {"config": str(FIXTURES / "keras2/functional_multi_io.json")}),
}
TARGETS = {"onnx": "model.onnx", "tflite": "model.tflite", "savedmodel": "sm/", "pb": "model.pb"}
CASES = [(s, t) for s in SOURCES for t in TARGETS]


@pytest.mark.parametrize("source,target", CASES, ids=[f"{s}-{t}" for s, t in CASES])
def test_tf_source_converts_and_verifies(tmp_path, source: str, target: str) -> None:
    rel, options = SOURCES[source]
    dst = f"{tmp_path}/{TARGETS[target]}"  # a Path would drop the trailing / that asks for a SavedModel
    report = convert(TF / rel, dst, ConvertOptions(**options))
    assert report.written and report.passed, report.render()
    assert report.verification is not None and report.verification.outputs
    assert all(o.passed for o in report.verification.outputs)
    out = modeltool.load(dst.rstrip("/"))
    src = modeltool.load(TF / rel, **options)
    assert sorted(_input_names(out)) == sorted(_input_names(src))
    if source in WRITER_REFERENCES:  # the numbers TensorFlow computed from the source file itself
        assert assert_matches_writer(WRITER_REFERENCES[source], dst.rstrip("/")).startswith("tensorflow")


#: sources whose outputs TensorFlow stored on fixed inputs (fixtures/make_references.py)
WRITER_REFERENCES = {
    "keras3_export": "tf/keras3_export", "module_sm": "tf/module_sm", "keras2_sm": "tf/keras2_sm",
    "tf1_frozen_pb": "tf/tf1_frozen", "tf1_frozen_pbtxt": "tf/tf1_frozen",
}  # fmt: skip


def _input_names(model) -> list[str]:
    """The names a user feeds: the serving signature's keys where there is one."""
    return [t.name for t in (model.signatures[0].inputs if model.signatures else model.inputs)]


def test_tf1_outputs_equal_tensorflow_figures(tmp_path) -> None:
    """The converted y = a * w + b gives the numbers TF computed when the fixture was written."""
    import onnxruntime as ort

    entry = manifest()["tf/tf1"]
    for rel in ("tf1_ckpt", "tf1_frozen.pb", "tf1_builder"):
        dst = tmp_path / f"{rel}.onnx"
        assert convert(TF / rel, str(dst)).written
        sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
        (y,) = sess.run(["y"], {"a": np.array(entry["probe"], np.float32)})
        np.testing.assert_allclose(y, entry["expected"], rtol=1e-6)


def test_signature_choice(tmp_path) -> None:
    report = convert(TF / "module_sm", str(tmp_path / "d.onnx"), ConvertOptions(signature="double"))
    assert report.written and report.details["signature"] == "double"
    assert [t.name for t in modeltool.load(tmp_path / "d.onnx").outputs] == ["doubled"]
    with pytest.raises(UsageError, match="available: double, serving_default"):
        convert(TF / "module_sm", str(tmp_path / "x.onnx"), ConvertOptions(signature="nope"))
    assert not (tmp_path / "x.onnx").exists()
    # no serving_default and one signature: that one; the TF1 export names its own
    assert convert(TF / "tf1_builder", str(tmp_path / "t.onnx")).details["signature"] == "predict_y"


def test_cli_unknown_signature_and_missing_architecture(tmp_path) -> None:
    result = run_cli("convert", TF / "module_sm", tmp_path / "m.onnx", "--signature", "nope")
    assert result.returncode == 2 and "no signature 'nope'; available: double, serving_default" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "m.onnx").exists()
    result = run_cli("convert", TF / "keras3_ckpt", tmp_path / "k.onnx")
    assert result.returncode == 2 and "--config" in result.stderr and not (tmp_path / "k.onnx").exists()
    result = run_cli("convert", TF / "module_sm", tmp_path / "m.keras")
    assert result.returncode == 2 and "no Keras layers" in result.stderr


def test_cli_checkpoint_with_config_json(tmp_path) -> None:
    result = run_cli("convert", TF / "keras2_ckpt", tmp_path / "m.tflite", "--config",
                     FIXTURES / "keras2/functional_multi_io.json", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["passed"] and data["source_format"] == "checkpoint"
    assert {o["name"] for o in data["verification"]["outputs"]} == {"class_out", "reg_out"}


@pytest.mark.parametrize("name", ["conv_bn.keras", "functional_multi_io.keras", "rnn_text.keras", "nested.keras"])
def test_keras_to_frozen_graphdef(tmp_path, name: str) -> None:
    dst = tmp_path / "model.pb"
    report = convert(FIXTURES / "keras3" / name, str(dst))
    assert report.written and report.passed, report.render()
    graph = modeltool.load(dst)
    source = modeltool.load(FIXTURES / "keras3" / name)
    assert [t.name for t in graph.inputs] == [t.name for t in source.inputs]
    assert [t.name for t in graph.outputs] == [t.name for t in source.outputs]
    assert not {"VarHandleOp", "ReadVariableOp", "VariableV2"} & set(graph.metadata.extra["op_histogram"])


def test_verify_cli_between_graph_formats(tmp_path) -> None:
    assert convert(TF / "keras2_sm", str(tmp_path / "m.onnx")).written
    result = run_cli("verify", TF / "keras2_sm", tmp_path / "m.onnx", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passed"]
    result = run_cli("verify", TF / "tf1_frozen.pb", TF / "tf1_ckpt", "--inputs", "a", "--outputs", "y")
    assert result.returncode == 0, result.stderr


@requires_corpus
@pytest.mark.parametrize("target", ["onnx", "tflite", "savedmodel", "pb"])
def test_corpus_saved_models(tmp_path, target: str) -> None:
    for rel in ("serving_tf2_half_plus_two/00000123", "rust_keras_multi_input_sm/keras_multiple_inputs_saved_model"):
        report = convert(CORPUS / rel, f"{tmp_path}/{rel.split('/')[0]}{TARGETS[target].removeprefix('model')}")
        assert report.written and report.passed, report.render()


@requires_corpus
def test_corpus_half_plus_two_other_signatures(tmp_path) -> None:
    report = convert(CORPUS / "serving_tf2_half_plus_two/00000123", str(tmp_path / "r.onnx"),
                     ConvertOptions(signature="regress_x2_to_y3"))  # fmt: skip
    assert report.written and report.passed
    with pytest.raises(UnsupportedError, match="ParseExample"):  # its input is a serialized tf.Example
        convert(CORPUS / "serving_tf2_half_plus_two/00000123", str(tmp_path / "c.onnx"),
                ConvertOptions(signature="classify_x_to_y"))  # fmt: skip


@requires_corpus
def test_corpus_checkpoints_and_frozen_graph(tmp_path) -> None:
    jessie = convert(CORPUS / "ckpt_tf2_jessie_keras_weights/training_2", str(tmp_path / "j.onnx"))
    assert jessie.written and jessie.passed  # architecture from the checkpoint's own OBJECT_CONFIG_JSON
    reg = convert(CORPUS / "tf2onnx_regression_ckpt/checkpoint", str(tmp_path / "r.tflite"),
                  ConvertOptions(inputs="X=4", outputs="pred"))  # fmt: skip
    assert reg.written and reg.passed
    feed = tmp_path / "in.npz"  # keep_prob = 1: dropout off, so both runs are deterministic
    np.savez(feed, X=np.random.default_rng(0).standard_normal((2, 784)).astype("float32"),
             keep_prob=np.array(1.0, "float32"))  # fmt: skip
    for target in ("onnx", "tflite"):
        lstm = convert(CORPUS / "tf2onnx_lstm_frozen/frozen.pb", str(tmp_path / f"lstm.{target}"),
                       ConvertOptions(input_data=str(feed)))  # fmt: skip
        assert lstm.written and lstm.passed, lstm.render()


def test_stderr_is_one_line_without_tf_log_settings(tmp_path) -> None:
    """TensorFlow's own C++ lines (the CUDA probe, XNNPACK) never reach the user's stderr."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MODELTOOL_DEBUG")}
    result = run_cli("convert", TF / "module_sm", tmp_path / "m.onnx", "--signature", "nope", env=env)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    ok = run_cli("convert", FIXTURES / "keras3/sequential_mlp.keras", tmp_path / "m.tflite", "-q", env=env)
    assert ok.returncode == 0 and ok.stderr.strip() == "", ok.stderr


def test_large_constants_of_graph_sources_bypass_tf2onnx(tmp_path) -> None:
    """A SavedModel's large weights are detached from the frozen graph before tf2onnx and attached
    as initializers afterwards (the memory-saving path of Keras sources), still verified."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((256,), name="x")
    out = keras.layers.Dense(4, name="head")(keras.layers.Dense(256, activation="relu", name="wide")(inp))
    keras.Model(inp, out).export(str(tmp_path / "sm"), verbose=False)
    report = convert(tmp_path / "sm", str(tmp_path / "m.onnx"))
    assert report.written and report.passed, report.render()
    assert any(f.startswith("attached 1 large weights") for f in report.details["fixes"]), report.details
    import onnx

    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert [i.name for i in proto.graph.input] == ["x"]
    assert max(int(np.prod(t.dims)) for t in proto.graph.initializer) == 256 * 256


def test_tf012_meta_graph_version_stamp_does_not_stop_conversion(tmp_path) -> None:
    """TF 0.12 stamped meta graphs "0.12.head", which TensorFlow's version check now rejects."""
    import shutil

    import tensorflow as tf

    for f in (TF / "tf1_ckpt").iterdir():
        shutil.copy(f, tmp_path / f.name)
    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString((tmp_path / "model.meta").read_bytes())
    meta.meta_info_def.tensorflow_version = "0.12.head"
    (tmp_path / "model.meta").write_bytes(meta.SerializeToString())
    with tf.Graph().as_default(), pytest.raises(Exception, match="(?i)version"):
        tf.compat.v1.train.import_meta_graph(str(tmp_path / "model.meta"))  # what users hit
    report = convert(tmp_path / "model", str(tmp_path / "m.onnx"))
    assert report.written and report.passed, report.render()
    assert assert_matches_writer("tf/tf1_frozen", str(tmp_path / "m.onnx")).startswith("tensorflow")


def test_swish_export_to_saved_model(tmp_path) -> None:
    """An EfficientNet-style `export()` (swish, whose custom gradient captures a folded tensor) re-exported
    as a SavedModel ("Found invalid capture ... when saving custom gradients" before)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="swish"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])  # fmt: skip
    model.export(str(tmp_path / "src"), verbose=False)
    report = convert(tmp_path / "src", f"{tmp_path}/out/")
    assert report.written and report.passed, report.render()
    x = np.random.default_rng(5).standard_normal((2, 8, 8, 3)).astype("float32")
    fn = tf.saved_model.load(str(tmp_path / "out")).signatures["serving_default"]
    (key,) = fn.structured_input_signature[1]
    (got,) = fn(**{key: tf.constant(x)}).values()
    np.testing.assert_allclose(got.numpy(), np.asarray(model(x)), rtol=1e-4, atol=1e-5)


@requires_corpus
def test_tf1_checkpoint_loss_output_and_unknown_shapes_are_explained(tmp_path) -> None:
    """The corpus TF1 regression checkpoint: the detected output is the loss (it reads the label
    placeholder Y) and its inputs state no shape. Each gets a clear request, never an invalid ONNX
    op or a scalar feed; answering them converts, and TensorFlow agrees."""
    src = CORPUS / "tf2onnx_regression_ckpt/checkpoint"
    model = modeltool.load(src)
    assert any("probably the loss" in w and "pred" in w for w in model.warnings)
    with pytest.raises(UsageError, match="probably the loss.*--outputs.*pred"):
        convert(src, str(tmp_path / "r.onnx"))
    with pytest.raises(UsageError, match="no shape for input.*X.*--input-shape X="):
        convert(src, str(tmp_path / "r.onnx"), ConvertOptions(outputs="pred"))
    assert [s.name for s in modeltool.load(src, outputs="pred").inputs] == ["X"]  # Y feeds the loss only
    report = convert(src, str(tmp_path / "r.onnx"), ConvertOptions(outputs="pred", inputs="X=4"))
    assert report.written and report.passed, report.render()


@requires_corpus
def test_fixed_input_bakes_a_dropout_keep_prob_in(tmp_path) -> None:
    """The docs' frozen-graph example on the corpus LSTM: `keep_prob` (a dropout's) fixed to 1 is a
    constant, so the reference is deterministic and the converted files compute what TensorFlow does."""
    import onnxruntime as ort
    import tensorflow as tf

    src = CORPUS / "tf2onnx_lstm_frozen/frozen.pb"
    options = ConvertOptions(inputs="X=1x784", outputs="output", fixed_inputs={"keep_prob": 1.0})
    report = convert(src, str(tmp_path / "l.onnx"), options)
    assert report.written and report.passed, report.render()
    assert any("keep_prob=1" in w for w in report.warnings)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(src.read_bytes())
    x = np.random.default_rng(3).standard_normal((1, 784)).astype("float32")
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            want = sess.run("output:0", {"X:0": x, "keep_prob:0": 1.0})
    sess = ort.InferenceSession(str(tmp_path / "l.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["X"]
    np.testing.assert_allclose(sess.run(None, {"X": x})[0], want, rtol=1e-4, atol=1e-5)
    with pytest.raises(UsageError, match="no Placeholder"):
        convert(src, str(tmp_path / "m.onnx"), ConvertOptions(fixed_inputs={"nope": 1.0}))
