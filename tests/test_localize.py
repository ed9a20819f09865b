"""`verify --localize`: fault injection. A converted file is damaged in one layer (its weights
perturbed, or a BatchNormalization's effect removed) and the localization must name that layer as
the first divergence; an undamaged one must name none. The reference is Keras (or tf_keras for
Keras 1/2 files) running the original file."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from modeltool.convert import convert
from modeltool.options import ConvertOptions, VerifyOptions
from modeltool.verify import verify_files
from tests.conftest import CORPUS, FIXTURES, requires_corpus, run_cli


def _onnx(src, tmp_path, name="m.onnx", **options) -> str:
    out = str(tmp_path / name)
    assert convert(src, out, ConvertOptions(**options)).written
    return out


def _perturb(path: str, layer: str, out: str, op_types=("Conv", "MatMul", "Gemm", "LSTM")) -> str:
    """Scale the weight initializer of the (first) node of `layer` by 1.5."""
    model = onnx.load(path)
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        scopes = node.name.split("/")
        named = any(s == layer or s.rsplit("_", 1)[0] == layer for s in scopes)
        if node.op_type in op_types and (named or op_types == ("LSTM",)):
            weight = next(i for i in node.input[1:] if i in inits)
            array = numpy_helper.to_array(inits[weight]).copy() * 1.5 + 0.01
            inits[weight].CopyFrom(numpy_helper.from_array(array.astype(np.float32), weight))
            onnx.save(model, out)
            return out
    raise AssertionError(f"no {op_types} node of layer {layer} in {path}")


def _first(src, target, **options) -> str | None:
    report = verify_files(src, target, VerifyOptions(localize=True, **options))
    first = report.localization.first_divergence
    return first.name if first is not None else None


CASES = {  # fixture, layer to damage
    "mlp": (FIXTURES / "keras3/sequential_mlp.keras", "hidden"),
    "cnn": (FIXTURES / "keras3/conv_bn.keras", "dw"),
    "nested": (FIXTURES / "keras3/nested.keras", "inner_dense_2"),
    "lstm": (FIXTURES / "keras3/rnn_text.keras", "bilstm"),  # tf2onnx's fused LSTM op carries no layer name
    "keras2": (FIXTURES / "keras2/functional_multi_io.h5", None),  # the damaged layer picked below
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_perturbed_layer_is_the_first_divergence(case, tmp_path) -> None:
    src, layer = CASES[case]
    clean = _onnx(src, tmp_path)
    assert _first(src, clean) is None
    if layer is None:
        layer = _first_weighted_layer(src)
    ops = ("LSTM",) if case == "lstm" else ("Conv", "MatMul", "Gemm")
    bad = _perturb(clean, layer.split("/")[-1], str(tmp_path / "bad.onnx"), ops)
    name = _first(src, bad)
    assert name is not None and name.split("/")[-1] == layer.split("/")[-1], name


def _first_weighted_layer(src) -> str:
    import modeltool

    model = modeltool.load(src)
    return next(w.layer for w in model.weights if w.role == "kernel")


def test_dropped_batchnorm_is_named(tmp_path) -> None:
    """A BatchNormalization after a ReLU cannot be folded into a convolution: tf2onnx writes its
    Mul/Add; bypassing them (the layer's effect dropped) is found at that layer."""
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3), name="image")
    y = keras.layers.Conv2D(4, 3, name="conv")(x)
    y = keras.layers.ReLU(name="act")(y)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    model = keras.Model(x, keras.layers.Dense(3, name="head")(y))
    bn = model.get_layer("bn")
    bn.set_weights([np.full(4, 2.0), np.full(4, 0.5), np.full(4, 0.1), np.full(4, 0.3)])
    model.save(tmp_path / "m.keras")
    clean = onnx.load(_onnx(tmp_path / "m.keras", tmp_path))
    inits = {t.name: t for t in clean.graph.initializer}
    bn_nodes = [n for n in clean.graph.node if {"bn", "bn_1"} & set(n.name.split("/"))
                and n.op_type in ("Mul", "Add", "BatchNormalization")]  # fmt: skip
    assert bn_nodes, [n.name for n in clean.graph.node]
    for node in bn_nodes:  # the normalization's scale becomes 1 and its shift 0: the layer passes x through
        roles = {"Mul": ["ones"], "Add": ["zeros"], "BatchNormalization": ["ones", "zeros", "zeros", "ones"]}
        params = [name for name in node.input if name in inits]
        for name, role in zip(params, roles[node.op_type]):
            array = numpy_helper.to_array(inits[name])
            neutral = np.ones if role == "ones" else np.zeros
            inits[name].CopyFrom(numpy_helper.from_array(neutral(array.shape, array.dtype), name))
    onnx.save(clean, str(tmp_path / "nobn.onnx"))
    assert _first(tmp_path / "m.keras", tmp_path / "nobn.onnx") == "bn"


@requires_corpus
def test_keras1_file(tmp_path) -> None:
    """A Keras 1 file (the corpus F-CRNN), its reference computed by tf_keras from the config."""
    src = CORPUS / "k1_countnet_fcrnn_full/F-CRNN.h5"
    clean = _onnx(src, tmp_path)
    assert _first(src, clean) is None
    bad = _perturb(clean, "convolution1d_2", str(tmp_path / "bad.onnx"))
    assert _first(src, bad) == "convolution1d_2"


def test_json_and_cli(tmp_path) -> None:
    src = FIXTURES / "keras3/conv_bn.keras"
    bad = _perturb(_onnx(src, tmp_path), "dw", str(tmp_path / "bad.onnx"))
    result = run_cli("verify", src, bad, "--localize", "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)["localization"]
    assert data["first_divergence"]["layer"] == "dw"
    layer = next(e for e in data["layers"] if e["name"] == "dw")
    assert {"name", "max_abs", "cosine", "snr_db", "passed"} <= set(layer) and layer["passed"] is False
    text = run_cli("verify", src, bad, "--localize").stdout
    assert "first divergence: dw" in text


def test_convert_localizes_when_verification_fails(tmp_path, monkeypatch) -> None:
    """`convert --localize` localizes on failure, and only then: a wrong reading of the forward LSTM's
    kernel (planted here) fails the conversion and names that layer first; a passing conversion
    carries no localization."""
    from modeltool.ir import Weight

    report = convert(FIXTURES / "keras3/conv_bn.keras", str(tmp_path / "m.onnx"), ConvertOptions(localize=True))
    assert report.written and report.verification.localization is None
    read = Weight.value

    def corrupted(self: Weight) -> np.ndarray:
        value = read(self)
        return value[..., ::-1].copy() if "forward_lstm" in self.name and self.role == "kernel" else value

    monkeypatch.setattr(Weight, "value", corrupted)
    report = convert(FIXTURES / "keras3/rnn_text.keras", str(tmp_path / "r.onnx"),
                     ConvertOptions(localize=True, via="direct"))  # fmt: skip
    assert not report.written and report.verification.localization is not None
    assert report.verification.localization.first_divergence.name.startswith("bilstm"), report.render()


def test_quantized_layers_ranked_by_contribution(tmp_path) -> None:
    src = FIXTURES / "keras3/conv_bn.keras"
    np.savez(tmp_path / "cal.npz", pixels=np.random.default_rng(0).standard_normal((16, 16, 16, 3)).astype("float32"))
    q = str(tmp_path / "q.tflite")
    assert convert(src, q, ConvertOptions(quantize="int8", calibration=str(tmp_path / "cal.npz"))).written
    report = verify_files(src, q, VerifyOptions(localize=True))
    loc = report.localization
    assert loc.quantized and loc.ranked and loc.ranked[0].contribution_db >= loc.ranked[-1].contribution_db
    assert "keep in float first" in loc.render()


def test_ranking_is_the_error_each_layer_adds_not_the_cap() -> None:
    """Exact inputs, then a layer at 40 dB SNR, then one that reads it and falls to 20 dB: the second
    adds a hundred times more noise and ranks first (a difference of SNRs ranked the first one
    first, by the 200 dB given to its exact inputs)."""
    from modeltool.localize import LayerError, _contributions

    a = LayerError("conv", "t0", [1], "ok", snr_db=40.0)
    b = LayerError("dense", "t1", [1], "ok", snr_db=20.0)
    exact = LayerError("relu", "t2", [1], "ok", snr_db=200.0)
    _contributions([a, b, exact], {"conv": ["input"], "dense": ["conv"], "relu": ["dense"]})
    assert b.contribution_db > a.contribution_db
    assert abs(a.contribution_db - -40.0) < 1e-6 and abs(b.contribution_db - 10 * np.log10(1e-2 - 1e-4)) < 1e-6
    assert exact.contribution_db is None  # adds nothing


def test_a_tensor_carrying_part_of_a_layer_is_never_its_counterpart() -> None:
    """TFLite fuses a SeparableConv2D's pointwise half with the BatchNormalization and activation
    after it into one op named after all three; the depthwise half keeps the layer's own name. The
    layer has no counterpart; the fused tensor is the activation's."""
    from modeltool.localize import pair

    v = np.zeros((1, 4, 4, 8), "float32")
    ref = [("separable_conv2d", v), ("batch_normalization", v), ("activation", v)]
    tgt = [("model/separable_conv2d/separable_conv2d/depthwise1", v),
           ("model/activation/Relu;model/batch_normalization/FusedBatchNormV3;model/separable_conv2d/separable_conv2d",
            v)]  # fmt: skip
    matched = pair(ref, tgt)
    assert matched[0] is None and matched[1] is None
    assert matched[2] is not None and matched[2][0].startswith("model/activation/Relu")


def test_keras2_writer_against_keras3_rebuild(tmp_path) -> None:
    """Between the writer's runtime (tf_keras) and modeltool's Keras 3 rebuild of the same file."""
    src = FIXTURES / "keras2/conv_bn.h5"
    migrated = str(tmp_path / "m.keras")
    assert convert(src, migrated).written
    report = verify_files(src, migrated, VerifyOptions(localize=True))
    loc = report.localization
    assert loc.first_divergence is None and all(e.status == "ok" for e in loc.layers), loc.render()


@requires_corpus
def test_int8_tflite_of_separable_convs_never_misnames_a_layer(tmp_path) -> None:
    """fer2013_mini_XCEPTION (corpus, Keras 2) as int8 TFLite: TFLite fuses each SeparableConv2D's
    pointwise half with the BatchNormalization and activation after it, and only the depthwise
    half keeps the layer's name. That half was reported as the layer's output ("cosine 0.07,
    diverged", named the first divergence of a PASSED file); the layer now has no counterpart."""
    src = CORPUS / "k2_fer_mini_xception/fer2013_mini_XCEPTION.102-0.66.hdf5"
    q = str(tmp_path / "fer.tflite")
    assert convert(src, q, ConvertOptions(quantize="int8", verify=False)).written
    report = verify_files(src, q, VerifyOptions(localize=True))
    loc = report.localization
    layers = {e.name: e for e in loc.layers}
    separable = [e for name, e in layers.items() if name.startswith("separable_conv2d")]
    assert separable and all(e.status == "unmatched" for e in separable), [(e.name, e.target) for e in separable]
    assert report.passed and loc.first_divergence is None, report.render()
    # every pair that was made is a whole layer's output: its figures agree with the verdict
    assert all(e.cosine is not None and e.cosine > 0.9 for e in loc.layers if e.status != "unmatched")
