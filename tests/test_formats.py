"""Format detection by content: extensions lie, graph formats are recognised ahead of their loader."""

from __future__ import annotations

import shutil

import pytest

from modeltool.errors import LoadError
from modeltool.formats import Format, detect
from tests.conftest import CORPUS, FIXTURES, requires_corpus, run_cli


@pytest.mark.parametrize(
    "rel,fmt",
    [
        ("keras3/conv_bn.keras", Format.KERAS_V3),
        ("keras3/conv_bn.h5", Format.KERAS_H5),
        ("keras3/conv_bn.weights.h5", Format.KERAS3_WEIGHTS),
        ("keras2/conv_bn_weights.h5", Format.KERAS_H5_WEIGHTS),
        ("keras2/conv_bn.json", Format.KERAS_JSON),
        ("keras2/conv_bn.yaml", Format.KERAS_YAML),
        ("graphs/conv_bn.onnx", Format.ONNX),
        ("graphs/conv_bn.tflite", Format.TFLITE),
    ],
)
def test_detect_ignores_extension(tmp_path, rel, fmt) -> None:
    assert detect(FIXTURES / rel) == fmt
    renamed = tmp_path / "model.bin"
    shutil.copy(FIXTURES / rel, renamed)
    assert detect(renamed) == fmt


def test_corrupted_saved_model_pb(tmp_path) -> None:
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"\x12\xff\xff\x03garbage")
    assert detect(tmp_path / "sm") == Format.SAVEDMODEL
    import modeltool

    with pytest.raises(LoadError, match="truncated or corrupted"):
        modeltool.load(tmp_path / "sm")
    result = run_cli("inspect", tmp_path / "sm")
    assert result.returncode == 2 and "saved_model.pb" in result.stderr and len(result.stderr.splitlines()) == 1


def test_directory_without_model(tmp_path) -> None:
    result = run_cli("inspect", tmp_path)
    assert result.returncode == 2 and "neither a SavedModel" in result.stderr


@requires_corpus
@pytest.mark.parametrize(
    "rel,fmt",
    [
        ("serving_tf2_half_plus_two/00000123", Format.SAVEDMODEL),
        ("rust_keras_multi_input_sm/keras_multiple_inputs_saved_model", Format.SAVEDMODEL),
        ("tf2onnx_regression_ckpt/checkpoint", Format.CHECKPOINT),
        ("tf2onnx_regression_ckpt/checkpoint/model", Format.CHECKPOINT),
        ("ckpt_tf2_jessie_keras_weights/training_2/cp-0000.ckpt", Format.CHECKPOINT),
        ("tf2onnx_lstm_frozen/frozen.pb", Format.GRAPHDEF),
        ("k2_adam_h5_named_keras/model.keras", Format.KERAS_H5),
    ],
)
def test_corpus_graph_formats_detected(rel, fmt) -> None:
    assert detect(CORPUS / rel) == fmt


def test_frozen_graph_with_a_function_library_is_a_graphdef(tmp_path) -> None:
    """A frozen graph whose While loop lives in its function library parses as a SavedModel too
    (function return names read as tags); it is a GraphDef."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from modeltool.formats import Format, detect

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def loop(x):
        return tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0), (0, x))[1]

    frozen = convert_variables_to_constants_v2(loop.get_concrete_function(), lower_control_flow=False)
    graph_def = frozen.graph.as_graph_def()
    assert len(graph_def.library.function) > 0
    (tmp_path / "loop.pb").write_bytes(graph_def.SerializeToString())
    assert detect(tmp_path / "loop.pb") == Format.GRAPHDEF
