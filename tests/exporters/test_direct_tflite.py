"""The direct TFLite route: `.tflite` written from the IR with flatbuffers and LiteRT's schema.

Every file is verified by `convert` (LiteRT against the writer's runtime reading the original), and
the numbers are checked again here against Keras itself (`keras.saving.load_model`) or the stored
references the fixtures' writers computed (`fixtures/make_references.py`): never modeltool
against itself.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeltool.convert import convert
from modeltool.options import ConvertOptions
from tests.conftest import FIXTURES, run_cli
from tests.exporters.conftest import WRITER_ATOL, WRITER_RTOL, assert_matches_writer, trained_looking

#: fixtures every layer of which has a TFLite lowering
DIRECT = ["keras3/conv_bn.keras", "keras3/sequential_mlp.keras", "keras3/reshaping.keras",
          "keras3/functional_multi_io.keras", "keras3/nested.keras", "keras3/shared_layers.keras",
          "keras3/normalization.keras", "keras2/conv_bn.h5", "keras2/sequential_mlp.h5", "keras2/reshaping.h5",
          "keras2/functional_multi_io.h5", "keras2/nested.h5", "keras2/shared_layers.h5", "keras3/rnn_text.keras",
          "keras2/rnn_text.h5"]  # fmt: skip


def _litert(path: str) -> tuple[object, dict]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    return interpreter, interpreter.get_signature_list()


def _ops(path: str) -> list[str]:
    """The builtin op names of every operator in the file, read with LiteRT's schema module."""
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(open(path, "rb").read(), 0)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    return [names[model.operatorCodes[op.opcodeIndex].builtinCode] for op in model.subgraphs[0].operators]


def _weight_bytes(path: str) -> int:
    """Bytes of every tensor buffer (the metadata's excluded)."""
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(open(path, "rb").read(), 0)
    meta = {m.buffer for m in model.metadata or []}
    return sum(len(b.data) for i, b in enumerate(model.buffers) if b.data is not None and i not in meta)


@pytest.mark.parametrize("rel", DIRECT)
def test_fixture_converts_directly_and_matches_its_writer(rel, tmp_path):
    dst = str(tmp_path / "m.tflite")
    report = convert(FIXTURES / rel, dst, ConvertOptions(via="direct"))
    assert report.passed and report.written, report.render()
    assert report.details["route"] == "direct" and report.details["flex_ops"] == []
    assert report.verification is not None and report.verification.verdict == "PASSED"
    assert_matches_writer(rel.split(".")[0], dst)  # what Keras 3 / tf_keras computed when the fixture was made


def test_auto_prefers_direct_and_says_why(tmp_path):
    report = convert(FIXTURES / "keras3/conv_bn.keras", str(tmp_path / "m.tflite"))
    assert report.details["route"] == "direct", report.render()
    assert "every layer has a TFLite lowering" in report.details["route_reason"]


def test_conv_model_is_nhwc_with_batchnorm_folded_and_activations_fused(tmp_path):
    """No transposes (TFLite computes channels-last as Keras does), no MUL/ADD left of the
    BatchNormalizations, the ReLU fused into its convolution."""
    dst = str(tmp_path / "m.tflite")
    report = convert(FIXTURES / "keras3/conv_bn.keras", dst, ConvertOptions(via="direct"))
    assert report.passed, report.render()
    ops = _ops(dst)
    assert "TRANSPOSE" not in ops and "MUL" not in ops and "ADD" not in ops and "RELU" not in ops, ops
    assert any("folded" in f for f in report.details["fixes"]), report.details


def test_signature_and_metadata_name_the_source(tmp_path):
    from ai_edge_litert import schema_py_generated as s

    dst = str(tmp_path / "m.tflite")
    convert(FIXTURES / "keras3/functional_multi_io.keras", dst, ConvertOptions(via="direct"))
    _, sigs = _litert(dst)
    assert list(sigs) == ["serving_default"]
    import keras

    model = keras.saving.load_model(FIXTURES / "keras3/functional_multi_io.keras", compile=False)
    assert sorted(sigs["serving_default"]["inputs"]) == sorted(model.input_names if hasattr(model, "input_names")
                                                               else [t.name for t in model.inputs])  # fmt: skip
    assert sorted(sigs["serving_default"]["outputs"]) == sorted(model.output_names)
    flat = s.ModelT.InitFromPackedBuf(open(dst, "rb").read(), 0)
    meta = {m.name.decode(): bytes(flat.buffers[m.buffer].data).decode() for m in flat.metadata}
    assert json.loads(meta["modeltool"])["source"].endswith("functional_multi_io.keras")


def test_dynamic_batch_runs_at_any_batch(tmp_path):
    """A batch Keras leaves open is -1 in the shape signature: LiteRT resizes it, and every batch
    computes what Keras computes."""
    import keras

    src = FIXTURES / "keras3/conv_bn.keras"
    dst = str(tmp_path / "m.tflite")
    assert convert(src, dst, ConvertOptions(via="direct", verify=False)).written
    interpreter, sigs = _litert(dst)
    runner = interpreter.get_signature_runner("serving_default")
    name = sigs["serving_default"]["inputs"][0]
    model = keras.saving.load_model(src, compile=False)
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 16, 16, 3)).astype("float32")
        got = list(runner(**{name: x}).values())[0]
        np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=WRITER_ATOL, rtol=WRITER_RTOL)


def test_float16_weights_halve_the_file_and_verify(tmp_path):
    full, half = str(tmp_path / "f.tflite"), str(tmp_path / "h.tflite")
    src = FIXTURES / "keras3/conv_bn.keras"
    assert convert(src, full, ConvertOptions(via="direct")).written
    report = convert(src, half, ConvertOptions(via="direct", quantize="float16"))
    assert report.passed and report.written and report.details["route"] == "direct", report.render()
    assert "DEQUANTIZE" in _ops(half)
    assert _weight_bytes(half) < 0.55 * _weight_bytes(full), (_weight_bytes(half), _weight_bytes(full))


def test_int8_goes_to_the_tensorflow_route_under_auto_and_is_refused_direct(tmp_path):
    src = FIXTURES / "keras3/sequential_mlp.keras"
    report = convert(src, str(tmp_path / "m.tflite"), ConvertOptions(quantize="int8"))
    assert report.passed and report.details["route"] == "tf", report.render()
    assert "--quantize int8" in report.details["route_reason"]
    result = run_cli("convert", str(src), str(tmp_path / "d.tflite"), "--via", "direct", "--quantize", "int8")
    assert result.returncode == 2 and "--via direct" in result.stderr and "float16" in result.stderr, result.stderr
    assert not (tmp_path / "d.tflite").exists()


def test_uncovered_layer_takes_the_tensorflow_route_under_auto(tmp_path):
    """Conv3D has no TFLite lowering (TFLite's CONV_3D aside, its pooling needs Flex ops)."""
    report = convert(FIXTURES / "keras3/conv_1d_3d.keras", str(tmp_path / "m.tflite"), ConvertOptions(allow_flex=True))
    assert report.details["route"] == "tf", report.render()
    assert "no TFLite lowering" in report.details["route_reason"] and "Conv3D" in report.details["route_reason"]


RECURRENT = """
import sys, keras
keras.utils.set_random_seed(7)
inp = keras.Input((6, 5), name="steps")
a = keras.layers.LSTM(4, return_sequences=True, go_backwards=True)(inp)
b, h, c = keras.layers.LSTM(3, return_state=True, recurrent_activation="hard_sigmoid")(a)
g1 = keras.layers.GRU(4, reset_after=False, return_sequences=True)(inp)
g2 = keras.layers.Bidirectional(keras.layers.GRU(3), merge_mode="sum")(g1)
s = keras.layers.SimpleRNN(2, activation="relu")(keras.layers.Bidirectional(
    keras.layers.LSTM(2, return_sequences=True))(inp))
out = keras.layers.Concatenate(name="features")([b, h, c, g2, s])
keras.Model(inp, out).save(sys.argv[1])
"""


def test_recurrent_layers_unrolled_compute_what_keras_computes(tmp_path):
    """LSTM (go_backwards, return_state, hard sigmoid gates), GRU without reset_after, Bidirectional
    (sum and concat), SimpleRNN with relu: unrolled into builtin ops, checked against Keras itself."""
    import subprocess
    import sys

    import keras

    src = tmp_path / "rnn.keras"
    subprocess.run([sys.executable, "-c", RECURRENT, str(src)], check=True, capture_output=True, timeout=300)
    dst = str(tmp_path / "rnn.tflite")
    report = convert(src, dst, ConvertOptions(via="direct"))
    assert report.passed and report.details["route"] == "direct", report.render()
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in _ops(dst) and "WHILE" not in _ops(dst)
    assert len(report.details["lowered"]) == 6 and "unrolled over its 6 steps" in report.details["lowered"][0]
    x = np.random.default_rng(8).standard_normal((3, 6, 5)).astype("float32")
    interpreter, _ = _litert(dst)
    got = interpreter.get_signature_runner("serving_default")(steps=x)["features"]
    want = np.asarray(keras.saving.load_model(src, compile=False)(x, training=False))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_via_direct_names_the_layer_it_cannot_write(tmp_path):
    dst = tmp_path / "m.tflite"
    result = run_cli("convert", str(FIXTURES / "keras3/conv_1d_3d.keras"), str(dst), "--via", "direct")
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "no TFLite lowering" in line and "--via tf" in line, line
    assert not dst.exists()


def test_via_applies_to_tflite_only_among_the_other_targets(tmp_path):
    result = run_cli("convert", str(FIXTURES / "keras3/conv_bn.keras"), str(tmp_path / "m.pb"), "--via", "direct")
    assert result.returncode == 2 and "onnx and tflite targets only" in result.stderr, result.stderr


# ---------------------------------------------------------------- keras.applications (slow)

APPLICATIONS = {"MobileNetV2": 64, "ResNet50": 64, "MobileNetV3Small": 64, "EfficientNetB0": 64,
                "ConvNeXtTiny": 64, "DenseNet121": 64, "InceptionResNetV2": 75, "NASNetMobile": 64,
                "Xception": 75}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_application_converts_directly_and_matches_keras(name, tmp_path):
    """Logits (no softmax to hide errors) and trained-looking BatchNormalization statistics, so no
    layer is silently idle; the file then computes what Keras computes from the saved file."""
    import keras

    size = APPLICATIONS[name]
    keras.utils.set_random_seed(1)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    trained_looking(model)
    src = tmp_path / f"{name}.keras"
    model.save(src)
    dst = str(tmp_path / f"{name}.tflite")
    report = convert(src, dst, ConvertOptions(via="direct", batch=1))
    assert report.passed and report.written, report.render()
    assert "TRANSPOSE" not in _ops(dst)
    interpreter, sigs = _litert(dst)
    runner = interpreter.get_signature_runner("serving_default")
    x = np.random.default_rng(3).uniform(0, 255, (1, size, size, 3)).astype("float32")
    got = list(runner(**{sigs["serving_default"]["inputs"][0]: x}).values())[0]
    want = np.asarray(keras.saving.load_model(src, compile=False)(x, training=False))
    scale = float(np.abs(want).max()) or 1.0
    np.testing.assert_allclose(got / scale, want / scale, atol=1e-4)


HYBRID_MODEL = """
import sys, keras
keras.utils.set_random_seed(0)
inp = keras.Input((16, 16, 8), name="pixels")
x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inp)
x = keras.layers.BatchNormalization()(x)
x = keras.layers.DepthwiseConv2D(3, depth_multiplier=4, padding="same", activation="relu6")(x)
x = keras.layers.Conv2D(16, 1)(x)
x = keras.layers.Flatten()(x)
x = keras.layers.Dense(64, activation="relu")(x)
keras.Model(inp, keras.layers.Dense(10, name="logits")(x)).save(sys.argv[1])
"""


def test_dynamic_range_weights_match_the_tflite_converter(tmp_path):
    """--quantize dynamic on the direct route: int8 weights per output channel read by TFLite's
    hybrid kernels. It verifies, and computes what the TFLite converter's own dynamic-range file
    computes (the same scheme), in a file no larger."""
    import os
    import subprocess
    import sys

    src = tmp_path / "m.keras"
    subprocess.run([sys.executable, "-c", HYBRID_MODEL, str(src)], check=True, capture_output=True, timeout=300)
    direct, tf = str(tmp_path / "d.tflite"), str(tmp_path / "t.tflite")
    a = convert(src, direct, ConvertOptions(via="direct", quantize="dynamic"))
    b = convert(src, tf, ConvertOptions(via="tf", quantize="dynamic"))
    assert a.passed and a.written and b.passed and b.written, a.render() + b.render()
    assert any("int8" in f for f in a.details["fixes"]), a.details
    assert os.path.getsize(direct) <= 1.01 * os.path.getsize(tf)
    x = np.random.default_rng(4).standard_normal((1, 16, 16, 8)).astype("float32")
    outs = []
    for path in (direct, tf):
        interpreter, sigs = _litert(path)
        outs.append(list(interpreter.get_signature_runner("serving_default")(pixels=x).values())[0])
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-3)


def test_zero_padding_that_is_same_padding_folds_into_the_convolution(tmp_path):
    """MobileNet's `correct_pad` ((0, 1) before a stride-2 3x3 convolution) is exactly SAME: the PAD
    goes; a padding SAME would not make ((1, 1) here) stays a PAD."""
    import keras

    keras.utils.set_random_seed(5)
    inp = keras.Input((16, 16, 3), name="pixels")
    a = keras.layers.Conv2D(4, 3, strides=2)(keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(inp))
    b = keras.layers.Conv2D(4, 3, strides=2)(keras.layers.ZeroPadding2D(((1, 1), (1, 1)))(inp))
    src = tmp_path / "pad.keras"
    keras.Model(inp, keras.layers.Concatenate()([a, b])).save(src)
    dst = str(tmp_path / "pad.tflite")
    report = convert(src, dst, ConvertOptions(via="direct"))
    assert report.passed, report.render()
    assert _ops(dst).count("PAD") == 1, _ops(dst)
    assert any("zero paddings folded" in f for f in report.details["fixes"]), report.details


def test_channels_first_layers_pay_one_pair_of_transposes(tmp_path):
    """A channels-first network (Keras 1/2 files written for Theano): each layer is lowered as its
    channels-last twin between transposes, and the transposes between layers cancel; BatchNormalization
    over axis 1 still folds into its convolution. Checked against Keras itself."""
    import keras

    keras.utils.set_random_seed(6)
    inp = keras.Input((3, 12, 12), name="pixels")
    x = keras.layers.Conv2D(8, 3, padding="same", data_format="channels_first")(inp)
    x = keras.layers.BatchNormalization(axis=1)(x)
    x = keras.layers.MaxPooling2D(data_format="channels_first")(x)
    x = keras.layers.Conv2D(4, 3, activation="relu", data_format="channels_first")(x)
    x = keras.layers.ZeroPadding2D(1, data_format="channels_first")(x)
    out = keras.layers.Dense(5, name="logits")(keras.layers.Flatten(data_format="channels_first")(x))
    model = keras.Model(inp, out)
    trained_looking(model)
    src = tmp_path / "cf.keras"
    model.save(src)
    dst = str(tmp_path / "cf.tflite")
    report = convert(src, dst, ConvertOptions(via="direct"))
    assert report.passed and report.details["route"] == "direct", report.render()
    ops = _ops(dst)
    assert ops.count("TRANSPOSE") == 1 and "MUL" not in ops, ops  # in once; Flatten reads channels-last
    interpreter, _ = _litert(dst)
    x = np.random.default_rng(9).standard_normal((2, 3, 12, 12)).astype("float32")
    got = interpreter.get_signature_runner("serving_default")(pixels=x)["logits"]
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=1e-4, rtol=1e-4)


def test_masked_sequences_follow_keras(tmp_path):
    """Embedding(mask_zero=True) and Masking feed recurrent layers and a pooling: at a masked step
    the states stay, the output repeats (or is zero in Bidirectional's sequences), the average counts
    the kept steps only. Tokens with zeros inside and at the end; checked against Keras itself."""
    import keras

    keras.utils.set_random_seed(11)
    tokens = keras.Input((7,), dtype="int32", name="tokens")
    e = keras.layers.Embedding(20, 6, mask_zero=True)(tokens)
    a = keras.layers.LSTM(5, return_sequences=True)(e)
    b = keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True))(a)
    pooled = keras.layers.GlobalAveragePooling1D()(b)
    last = keras.layers.SimpleRNN(4, go_backwards=True)(e)
    frames = keras.Input((5, 3), name="frames")
    m = keras.layers.LSTM(3)(keras.layers.Masking(mask_value=0.0)(frames))
    out = keras.layers.Concatenate(name="features")([pooled, last, m])
    model = keras.Model([tokens, frames], out)
    src = tmp_path / "masked.keras"
    model.save(src)
    dst = str(tmp_path / "masked.tflite")
    report = convert(src, dst, ConvertOptions(via="direct"))
    assert report.passed and report.details["route"] == "direct", report.render()
    rng = np.random.default_rng(12)
    ids = rng.integers(1, 20, (3, 7)).astype("int32")
    ids[0, 5:] = 0
    ids[1, 2] = 0
    ids[2, :] = 0
    steps = rng.standard_normal((3, 5, 3)).astype("float32")
    steps[0, 3:] = 0.0
    steps[1, 1] = 0.0
    interpreter, _ = _litert(dst)
    got = interpreter.get_signature_runner("serving_default")(tokens=ids, frames=steps)["features"]
    want = np.asarray(model([ids, steps], training=False))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_indexing_recorded_in_a_functional_model(tmp_path):
    """`x[:, 0]`, `x[:, -1, 1:5:2]` and `x[:, 2:]` written in a Keras 3 functional model (keras.ops
    GetItem): one STRIDED_SLICE each, checked against Keras itself."""
    import keras

    seq = keras.Input((6, 8), name="seq")
    parts = [seq[:, 0], seq[:, -1, 1:5:2], keras.layers.Flatten()(seq[:, 2:])]
    model = keras.Model(seq, keras.layers.Concatenate(name="picked")(parts))
    src = tmp_path / "items.keras"
    model.save(src)
    dst = str(tmp_path / "items.tflite")
    report = convert(src, dst, ConvertOptions(via="direct"))
    assert report.passed and report.details["route"] == "direct", report.render()
    assert _ops(dst).count("STRIDED_SLICE") == 3, _ops(dst)
    x = np.random.default_rng(13).standard_normal((2, 6, 8)).astype("float32")
    interpreter, _ = _litert(dst)
    got = interpreter.get_signature_runner("serving_default")(seq=x)["picked"]
    np.testing.assert_allclose(got, np.asarray(model(x)), atol=1e-6)
