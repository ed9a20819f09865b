"""TFLite files as a source: converted to ONNX through tf2onnx's TFLite front end and verified by
running both files, LiteRT on the original (its writer's runtime) and onnxruntime on the result, on
the same inputs. The expected numbers come from LiteRT and, for the float fixtures, from Keras
computing the model the `.tflite` was made from."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import CORPUS, FIXTURES, requires_corpus, run_cli

GRAPHS = FIXTURES / "graphs"


def _litert(path, feed):
    from modeltool.runners.tflite import TFLiteRunner

    with TFLiteRunner(str(path)) as runner:
        return runner.infer(feed)


def _onnx(path, feed):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})))


def _feed(path, seed=11):
    from modeltool.runners.tflite import TFLiteRunner

    rng = np.random.default_rng(seed)
    with TFLiteRunner(str(path)) as runner:
        specs = runner.input_specs()
    return {s.name: rng.standard_normal(tuple(2 if d is None else d for d in s.shape)).astype(s.dtype) for s in specs}


@pytest.mark.parametrize("name", ["conv_bn", "sequential_mlp", "conv_bn_dynamic", "sequential_mlp_dynamic"])
def test_tflite_fixture_to_onnx_computes_what_litert_computes(tmp_path, name):
    src, dst = GRAPHS / f"{name}.tflite", tmp_path / f"{name}.onnx"
    done = run_cli("convert", src, dst, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] and report["details"]["front_end"] == "tf2onnx TFLite"
    feed = _feed(src)
    expected, got = _litert(src, feed), _onnx(dst, feed)
    assert set(got) == set(expected)  # the ONNX file carries LiteRT's names for the boundary
    atol = 1e-5 if "dynamic" not in name else report["verification"]["tolerance"]["atol"]
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, atol=atol, rtol=1e-3, err_msg=key)


def test_float_tflite_to_onnx_computes_what_keras_computes(tmp_path):
    """The ONNX file from the `.tflite` against Keras computing the model the `.tflite` was made from."""
    import keras

    model = keras.saving.load_model(FIXTURES / "keras3" / "conv_bn.keras")
    dst = tmp_path / "m.onnx"
    assert run_cli("convert", GRAPHS / "conv_bn.tflite", dst).returncode == 0
    feed = _feed(GRAPHS / "conv_bn.tflite", seed=5)
    (x,) = feed.values()
    (got,) = _onnx(dst, feed).values()
    np.testing.assert_allclose(got, np.asarray(model(x)), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("target", ["m.keras", "m.pb", "m.tflite"])
def test_tflite_to_other_targets_is_refused_in_one_line(tmp_path, target):
    done = run_cli("convert", GRAPHS / "conv_bn.tflite", tmp_path / target)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "TFLite" in lines[0], done.stderr
    assert not (tmp_path / target).exists()


CORPUS_TFLITE = {
    "serving_tflite_sigdef": "model.tflite",
    "tflite_erik_rnn_quant": "model_quantized.tflite",
    "tflm_mnist_lstm_int8": "trained_lstm_int8.tflite",
    "tflsupport_coco_ssd_quant_postprocess": "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite",
}


@requires_corpus
@pytest.mark.slow
def test_corpus_tflite_files(tmp_path):
    """The corpus's TFLite files, as a new user would convert them: the float model with a
    SignatureDef converts and verifies under its signature's names; what tf2onnx's TFLite front end
    cannot write (a TensorList RNN loop, TFLite Micro's int16-state LSTM) is exit 2 in one line; the
    uint8 SSD detector converts, and verification says which outputs differ: its post-processing
    selects other boxes once LiteRT's integer arithmetic and onnxruntime's differ by a step."""
    results = {}
    for folder, name in CORPUS_TFLITE.items():
        src = CORPUS / folder / name
        done = run_cli("convert", src, tmp_path / f"{folder}.onnx", "--json", timeout=600)
        results[folder] = done
    sigdef = results["serving_tflite_sigdef"]
    assert sigdef.returncode == 0, sigdef.stderr
    report = json.loads(sigdef.stdout)
    assert [o["name"] for o in report["verification"]["outputs"]] == ["y"]
    feed = {"tflite_input": np.array([[3.0]], np.float32)}
    src = CORPUS / "serving_tflite_sigdef" / "model.tflite"
    assert _onnx(tmp_path / "serving_tflite_sigdef.onnx", feed) == pytest.approx(_litert(src, feed))
    for folder in ("tflite_erik_rnn_quant", "tflm_mnist_lstm_int8"):
        done = results[folder]
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "tf2onnx" in lines[0] or "the converted ONNX model is invalid" in lines[0], lines[0]
        assert not (tmp_path / f"{folder}.onnx").exists()
    ssd = results["tflsupport_coco_ssd_quant_postprocess"]
    assert ssd.returncode == 1, ssd.stderr
    verdicts = {o["name"]: o["passed"] for o in json.loads(ssd.stdout)["verification"]["outputs"]}
    assert len(verdicts) == 4 and not all(verdicts.values())
