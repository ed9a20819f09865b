"""Real files written by other people (../shared/corpus): every one inspects, with the parameter
count its weights contain and the shapes the corpus manifest observed with TensorFlow/Keras."""

from __future__ import annotations

import json

import pytest

import modeltool
from tests.conftest import CORPUS, requires_corpus, run_cli

pytestmark = [requires_corpus, pytest.mark.corpus]

FILES = {
    "k1_countnet_fcrnn_full": "F-CRNN.h5",
    "k2_countnet_crnn_full": "CRNN.h5",
    "k2_fer_mini_xception": "fer2013_mini_XCEPTION.102-0.66.hdf5",
    "k2_adam_h5_named_keras": "model.keras",
    "k3_kss_cnn_keras": "best-model.keras",
    "k3_kss_weights": "model.weights.h5",
    "carnd_patrick_lambda_h5": "model.h5",
    "astryx_cudnnlstm_weights": "model.h5",
    "astryx_cudnnlstm_yaml": "model.yaml",
    "k1_chemts_gru_weights": "model.h5",
    "k1_chemts_gru_json": "model.json",
    "onnx_dogun_pytorch_cnn": "model.onnx",
    "serving_tflite_sigdef": "model.tflite",
    "tflite_erik_rnn_quant": "model_quantized.tflite",
}


def _entry(cid: str) -> dict:
    return next(e for e in json.loads((CORPUS / "manifest.json").read_text()) if e["id"] == cid)


def _stored_params(model) -> int:
    """What the file's weights contain, summed from the arrays themselves."""
    return sum(w.value().size for w in model.weights)


@pytest.mark.parametrize("cid", sorted(FILES))
def test_corpus_file_inspects(cid: str) -> None:
    path = CORPUS / cid / FILES[cid]
    model = modeltool.load(path)
    entry = _entry(cid)
    if model.weights:
        assert model.params.total == _stored_params(model)
    if entry["params"] is not None:
        assert model.params.total == entry["params"]
    result = run_cli("inspect", path, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["params"]["total"] == model.params.total


def test_keras1_countnet_shapes_from_config() -> None:
    model = modeltool.load(CORPUS / "k1_countnet_fcrnn_full" / "F-CRNN.h5")
    assert model.inputs[0].shape == (None, 500, 201)
    assert model.outputs[0].shape == (None, 11)
    assert model.metadata.writer["keras_version"] == "1.2.2"
    assert model.metadata.training["optimizer"] == "Adam"
    assert model.metadata.training["loss"] == "categorical_crossentropy"
    # Keras 1 weight names (convolution1d_1_W) get Keras 3 roles
    assert {w.role for w in model.get_layer("convolution1d_1") and model.weights if w.layer == "convolution1d_1"} == {
        "kernel", "bias"}  # fmt: skip


def test_keras2_channels_first_and_functional() -> None:
    crnn = modeltool.load(CORPUS / "k2_countnet_crnn_full" / "CRNN.h5")
    assert crnn.inputs[0].shape == (None, 1, 500, 201)
    assert crnn.outputs[0].shape == (None, 11)
    fer = modeltool.load(CORPUS / "k2_fer_mini_xception" / "fer2013_mini_XCEPTION.102-0.66.hdf5")
    assert [(t.name, t.shape) for t in fer.inputs] == [("input_1", (None, 64, 64, 1))]
    assert fer.outputs[0].shape == (None, 7)
    assert fer.params.non_trainable > 0  # BatchNormalization moving statistics


def test_h5_named_keras_is_detected_by_content() -> None:
    model = modeltool.load(CORPUS / "k2_adam_h5_named_keras" / "model.keras")
    assert model.format == "keras_h5"
    assert model.inputs[0].shape == (None, None)
    assert model.outputs[0].shape == (None, 1)


def test_config_and_weights_files_together() -> None:
    yaml_model = modeltool.load(CORPUS / "astryx_cudnnlstm_yaml" / "model.yaml")
    assert yaml_model.params.total == _entry("astryx_cudnnlstm_yaml")["params"]
    assert yaml_model.inputs[0].shape == (None, None, 5) and yaml_model.outputs[0].shape == (None, 5)
    both = modeltool.load(CORPUS / "astryx_cudnnlstm_yaml" / "model.yaml",
                          weights_from=CORPUS / "astryx_cudnnlstm_weights" / "model.h5")  # fmt: skip
    assert both.params.source == "weights"
    assert both.params.total == yaml_model.params.total == _stored_params(both)
    json_model = modeltool.load(CORPUS / "k1_chemts_gru_json" / "model.json",
                                weights_from=CORPUS / "k1_chemts_gru_weights" / "model.h5")  # fmt: skip
    assert json_model.outputs[0].shape == (None, 82, 64)
    assert json_model.params.total == _stored_params(json_model) == _entry("k1_chemts_gru_weights")["params"]
    assert [n.params for n in json_model.layers] == [
        sum(w.size for w in json_model.weights if w.layer == n.name) for n in json_model.layers
    ]


def test_lambda_is_shown_never_run(tmp_path) -> None:
    path = CORPUS / "carnd_patrick_lambda_h5" / "model.h5"
    result = run_cli("inspect", path)
    assert result.returncode == 0, result.stderr
    assert "Lambda layer lambda_1" in result.stdout and "not executed" in result.stdout
    detail = run_cli("inspect", path, "--layer", "lambda_1", "--json")
    info = json.loads(detail.stdout)
    assert info["lambda"]["executed"] is False and info["lambda"]["bytecode_bytes"] > 0
    assert info["config"]["function"] == "<bytecode, not executed>"


def test_tflite_flex_ops_and_signatures() -> None:
    model = modeltool.load(CORPUS / "tflite_erik_rnn_quant" / "model_quantized.tflite")
    assert model.metadata.extra["flex_ops"]
    assert model.signatures[0].name == "serving_default"
    assert model.inputs[0].shape == (None, 32, 13)
    assert model.metadata.extra["quantized"]  # dynamic-range quantized: int8 weights with scales
    assert any(w.dtype == "int8" and w.role == "quantized constant" for w in model.weights)


def test_onnx_corpus_matches_onnx_library() -> None:
    import onnx

    path = CORPUS / "onnx_dogun_pytorch_cnn" / "model.onnx"
    model = modeltool.load(path)
    proto = onnx.load(path)
    assert [n.op for n in model.layers] == [n.op_type for n in proto.graph.node]
    assert model.params.total == sum(int(onnx.numpy_helper.to_array(t).size) for t in proto.graph.initializer)
    assert model.metadata.writer["opset"] == "11"
