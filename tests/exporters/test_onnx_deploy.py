"""Deployment-ready ONNX: --quantize dynamic|int8|float16, channels-first boundaries, --optimize, --opset.

Every file is verified by `convert` against its source, and the expected numbers come from the
fixtures' writers (`fixtures/references/`, computed by Keras) or from Keras running the model built
here, never from modeltool's own output.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeltool.convert import ConvertOptions, convert
from modeltool.errors import ModelToolError, UsageError
from modeltool.verify import TOLERANCES
from tests.conftest import FIXTURES, run_cli
from tests.exporters.conftest import CUSTOM_OBJECTS, KERAS3, WRITER_ATOL, WRITER_RTOL, writer_reference

KINDS = ("dynamic", "int8", "float16")
#: fixtures with rank-4 image inputs: {fixture: its image inputs}
IMAGES = {"conv_bn": ("pixels",), "functional_multi_io": ("image",)}


def _options(**kw: object) -> ConvertOptions:
    """The TensorFlow route (tf2onnx), whose deployment options these tests are about: `auto` may
    write a Keras file by the direct exporter, which has its own tests."""
    kw.setdefault("via", "tf")
    return ConvertOptions(custom_objects=CUSTOM_OBJECTS, force=True, **kw)  # type: ignore[arg-type]


def _run_onnx(path: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime itself on `path` (no modeltool runner between the file and the numbers)."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    values = session.run(None, {n: feed[n] for n in names})
    return dict(zip([o.name for o in session.get_outputs()], values))


def _writer_feed(fixture: str, path: str) -> tuple[dict, list]:
    """The writer's stored inputs keyed by the ONNX file's input names, and its outputs."""
    import onnx

    inputs, expected, _ = writer_reference(f"keras3/{fixture}")
    names = [i.name for i in onnx.load(path).graph.input]
    feed = {n: inputs[n] for n in names} if set(names) == set(inputs) else dict(zip(names, inputs.values()))
    return feed, expected


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom else float(np.array_equal(a, b))


def _assert_quantized_matches_writer(fixture: str, path: str, kind: str) -> None:
    """The quantized file on the writer's inputs is within the documented tolerance of what the
    writer (Keras) computed: elementwise, or by cosine as quantized targets may."""
    feed, expected = _writer_feed(fixture, path)
    got = list(_run_onnx(path, feed).values())
    tol = TOLERANCES[kind]
    for (name, want), have in zip(expected, got):
        close = np.allclose(have, want, atol=tol.atol, rtol=tol.rtol)
        assert close or _cosine(have, want) >= tol.min_cosine, f"{path}: {name} is not within the {kind} tolerance"


# ---------------------------------------------------------------- quantization


@pytest.mark.parametrize("fixture", [n.split(".")[0] for n in KERAS3])
def test_every_fixture_quantizes_and_verifies(fixture, tmp_path):
    import modeltool
    from modeltool.quantization import quantization_kind

    src = FIXTURES / "keras3" / f"{fixture}.keras"
    for kind in KINDS:
        out = str(tmp_path / f"{kind}.onnx")
        report = convert(src, out, _options(quantize=kind))
        assert report.passed and report.written, report.render()
        assert report.verification.tolerance.min_cosine == TOLERANCES[kind].min_cosine
        details = report.details
        assert details["quantize"] == kind and details["quantized_nodes"] > 0, details
        assert details["quantized_weight_bytes"] > 0 < details["float_weight_bytes"]  # scales outweigh tiny kernels
        # `check`/`verify` read the kind back from the file
        assert quantization_kind(modeltool.load(out)) == kind
        assert any("RANDOM" in w for w in report.warnings) == (kind == "int8")
        _assert_quantized_matches_writer(fixture, out, kind)


def test_int8_file_is_about_4x_smaller_and_calibrates_on_npz(tmp_path):
    """A model whose size is its weights (1.3 M parameters): int8 weights are a quarter of float32."""
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((256,), name="features")
    h = keras.layers.Dense(1024, activation="relu", name="d1")(x)
    h = keras.layers.Dense(1024, activation="relu", name="d2")(h)
    model = keras.Model(x, keras.layers.Dense(10, name="scores")(h))
    model.save(tmp_path / "wide.keras")
    data = np.random.default_rng(1).standard_normal((16, 256)).astype("float32")
    np.savez(tmp_path / "cal.npz", features=data)
    floats = convert(tmp_path / "wide.keras", str(tmp_path / "f.onnx"), _options())
    options = _options(quantize="int8", calibration=str(tmp_path / "cal.npz"), calibration_method="percentile")
    int8 = convert(tmp_path / "wide.keras", str(tmp_path / "q.onnx"), options)
    assert int8.passed and int8.written, int8.render()
    assert 3.5 < floats.size_after / int8.size_after < 4.1, (floats.size_after, int8.size_after)
    assert int8.details["calibration"] == "cal.npz (16 samples)"
    assert not any("RANDOM" in w for w in int8.warnings)
    got = _run_onnx(str(tmp_path / "q.onnx"), {"features": data})["scores"]
    assert _cosine(got, model.predict(data, verbose=0)) >= TOLERANCES["int8"].min_cosine  # Keras's numbers


@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_calibration_methods(method, tmp_path):
    src = FIXTURES / "keras3" / "conv_bn.keras"
    report = convert(src, str(tmp_path / "q.onnx"), _options(quantize="int8", calibration_method=method))
    assert report.passed and report.written, report.render()
    _assert_quantized_matches_writer("conv_bn", str(tmp_path / "q.onnx"), "int8")


def test_float16_keeps_float32_io_unless_asked(tmp_path):
    import onnx

    src = FIXTURES / "keras3" / "conv_bn.keras"
    for keep, dtype in ((True, onnx.TensorProto.FLOAT), (False, onnx.TensorProto.FLOAT16)):
        out = tmp_path / f"h{keep}.onnx"
        report = convert(src, str(out), _options(quantize="float16", keep_io_types=keep))
        assert report.passed and report.written, report.render()
        model = onnx.load(out)
        assert {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]} == {dtype}


def test_cli_quantizes_onnx_with_calibration(tmp_path):
    """The flags an ONNX target now takes, from the real command line; --json stays parseable while
    onnxruntime's calibrator prints its progress."""
    np.savez(tmp_path / "cal.npz", pixels=np.random.default_rng(0).standard_normal((8, 16, 16, 3)).astype("float32"))
    proc = run_cli("convert", FIXTURES / "keras3/conv_bn.keras", tmp_path / "q.onnx", "--quantize", "int8",
                   "--calibration", tmp_path / "cal.npz", "--calibration-method", "entropy", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] and report["details"]["calibration"] == "cal.npz (8 samples)"
    assert report["details"]["quantize"] == "int8" and (tmp_path / "q.onnx").exists()
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"calibration": "x.npz"}, "--quantize int8"), ({"quantize": "dynamic", "calibration_method": "entropy"}, "int8"),
     ({"quantize": "int8", "keep_io_types": False}, "float16"), ({"quantize": "int8", "opset": 12}, "opset 13")],
)  # fmt: skip
def test_options_that_do_not_fit_are_usage_errors(kw, match, tmp_path):
    with pytest.raises(UsageError, match=match):
        convert(FIXTURES / "keras3/sequential_mlp.keras", str(tmp_path / "m.onnx"), _options(**kw))
    assert not (tmp_path / "m.onnx").exists()


# ---------------------------------------------------------------- channels-first boundaries


@pytest.mark.parametrize("fixture", sorted(IMAGES))
def test_image_inputs_as_nchw_verify_exactly(fixture, tmp_path):
    import onnx

    out = str(tmp_path / "m.onnx")
    names = IMAGES[fixture]
    report = convert(FIXTURES / "keras3" / f"{fixture}.keras", out, _options(inputs_as_nchw=names))
    assert report.passed and report.written, report.render()
    assert report.verification.tolerance == TOLERANCES["float32"]  # exact, never loosened
    assert report.details["transposes"] <= report.details["transposes_channels_last"]
    model = onnx.load(out)
    consumers = [n for n in model.graph.node if set(n.input) & set(names)]
    assert all(n.op_type != "Transpose" for n in consumers)  # the input goes straight into the convolution
    for i in model.graph.input:
        if i.name in names:
            assert [d.dim_value for d in i.type.tensor_type.shape.dim][1] == 3  # channels second
    # the writer's own inputs, transposed, give the writer's own outputs
    feed, expected = _writer_feed(fixture, out)
    feed = {k: np.transpose(v, (0, 3, 1, 2)) if k in names else v for k, v in feed.items()}
    got = _run_onnx(out, feed)
    for (name, want), have in zip(expected, got.values()):
        np.testing.assert_allclose(have, want, atol=WRITER_ATOL, rtol=WRITER_RTOL, err_msg=name)


def _assert_nchw_file_matches_keras(model, out: str, shape: tuple, seed: int) -> None:
    """onnxruntime on the channels-first file (input "image", output "mask") against Keras itself on
    the same data channels-last, transposed."""
    data = np.random.default_rng(seed).standard_normal(shape).astype("float32")
    got = _run_onnx(out, {"image": data.transpose(0, 3, 1, 2)})["mask"]
    want = model.predict(data, verbose=0).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want, atol=WRITER_ATOL, rtol=WRITER_RTOL)


def test_fully_convolutional_model_has_no_transpose_left(tmp_path):
    """NCHW in and out: the transposes tf2onnx puts around every convolution all cancel."""
    import keras
    import onnx

    keras.utils.set_random_seed(0)
    x = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", name="c1")(x)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU(name="relu")(h)
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    model = keras.Model(x, keras.layers.Conv2D(4, 1, name="mask")(h))
    model.save(tmp_path / "fcn.keras")
    out = str(tmp_path / "fcn.onnx")
    report = convert(tmp_path / "fcn.keras", out, _options(inputs_as_nchw=("image",), outputs_as_nchw=("mask",)))
    assert report.passed and report.written, report.render()
    assert report.details["transposes_channels_last"] >= 2 and report.details["transposes"] == 0
    assert "Transpose" not in {n.op_type for n in onnx.load(out).graph.node}
    _assert_nchw_file_matches_keras(model, out, (2, 16, 16, 3), seed=2)


def test_hard_swish_blocks_keep_no_transpose(tmp_path):
    """MobileNetV3's blocks (hard-swish, and a squeeze-excite gate whose `x + 3` follows a convolution
    that tf2onnx sees without its bias) once made tf2onnx's transpose optimizer raise and drop its whole
    pass (107 transposes left in MobileNetV3Small); the scalar addend is given as a one-element vector
    first, and every transpose cancels."""
    import keras
    import onnx

    def hard_sigmoid(h, name):
        return keras.layers.ReLU(6.0, name=f"{name}_relu6")(h + 3.0) * (1.0 / 6.0)

    def hard_swish(h, name):
        return keras.layers.Multiply(name=f"{name}_mul")([h, hard_sigmoid(h, name)])

    def squeeze_excite(h, name):  # as keras.applications.MobileNetV3 writes it
        s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(h)
        s = keras.layers.ReLU(name=f"{name}_relu")(keras.layers.Conv2D(4, 1, name=f"{name}_reduce")(s))
        s = hard_sigmoid(keras.layers.Conv2D(8, 1, name=f"{name}_expand")(s), name)
        return keras.layers.Multiply(name=f"{name}_scale")([h, s])

    keras.utils.set_random_seed(0)
    x = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(x)
    h = hard_swish(keras.layers.BatchNormalization(name="bn1")(h), "hs1")
    h = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(h)
    h = hard_swish(keras.layers.BatchNormalization(name="bn2")(h), "hs2")
    h = squeeze_excite(h, "se")
    model = keras.Model(x, keras.layers.Conv2D(4, 1, name="mask")(h))
    model.save(tmp_path / "hs.keras")
    out = str(tmp_path / "hs.onnx")
    report = convert(tmp_path / "hs.keras", out, _options(inputs_as_nchw=("image",), outputs_as_nchw=("mask",)))
    assert report.passed and report.written, report.render()
    assert report.details["transposes"] == 0, report.details
    assert "Transpose" not in {n.op_type for n in onnx.load(out).graph.node}
    _assert_nchw_file_matches_keras(model, out, (2, 16, 16, 3), seed=3)


def test_detached_depthwise_kernels_fold_and_leave_no_transpose(tmp_path):
    """A weight kept out of tf2onnx (large weights are, here every one) reaches a depthwise convolution
    through Reshape -> Transpose, run at every inference and counted as an activation transpose
    (EfficientNetB0 kept 6); both fold into the initializer."""
    import keras
    import onnx

    keras.utils.set_random_seed(0)
    x = keras.Input((12, 12, 3), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", name="c1")(x)
    h = keras.layers.DepthwiseConv2D(5, padding="same", name="dw")(h)
    model = keras.Model(x, keras.layers.Conv2D(4, 1, name="mask")(h))
    model.save(tmp_path / "dw.keras")
    out = str(tmp_path / "dw.onnx")
    opts = _options(inputs_as_nchw=("image",), outputs_as_nchw=("mask",), detach_bytes=1)
    report = convert(tmp_path / "dw.keras", out, opts)
    assert report.passed and report.written, report.render()
    assert any("weight reshapes" in f for f in report.details["fixes"]), report.details["fixes"]
    assert report.details["transposes"] == 0, report.details
    assert "Transpose" not in {n.op_type for n in onnx.load(out).graph.node}
    _assert_nchw_file_matches_keras(model, out, (2, 12, 12, 3), seed=4)


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"inputs_as_nchw": ("nope",)}, "no input named so"), ({"inputs_as_nchw": ("signal",)}, "rank 3"),
     ({"outputs_as_nchw": ("out",)}, "rank 2")],
)  # fmt: skip
def test_layout_names_that_do_not_fit_are_usage_errors(kw, match, tmp_path):
    with pytest.raises(UsageError, match=match):
        convert(FIXTURES / "keras3/conv_1d_3d.keras", str(tmp_path / "m.onnx"), _options(**kw))


# ---------------------------------------------------------------- optimization and opsets


def test_optimize_writes_fewer_standard_nodes_and_verifies(tmp_path):
    src = FIXTURES / "keras3" / "conv_bn.keras"
    plain = convert(src, str(tmp_path / "p.onnx"), _options())
    optimized = convert(src, str(tmp_path / "o.onnx"), _options(optimize=True))
    assert optimized.passed and optimized.written, optimized.render()
    assert optimized.details["nodes"] <= plain.details["nodes"]
    assert "optimized" in optimized.details
    import onnx

    assert {n.domain for n in onnx.load(tmp_path / "o.onnx").graph.node} <= {"", "ai.onnx"}  # portable ops only
    feed, expected = _writer_feed("conv_bn", str(tmp_path / "o.onnx"))
    for (name, want), have in zip(expected, _run_onnx(str(tmp_path / "o.onnx"), feed).values()):
        np.testing.assert_allclose(have, want, atol=WRITER_ATOL, rtol=WRITER_RTOL, err_msg=name)


def test_opset_range_both_ends(tmp_path):
    """The oldest and newest opsets of the range convert; one past either end is exit 2 naming the range."""
    from modeltool.exporters.onnx import opset_range

    oldest, newest, why = opset_range()
    src = FIXTURES / "keras3/sequential_mlp.keras"
    for opset in (oldest, newest):
        report = convert(src, str(tmp_path / f"o{opset}.onnx"), _options(opset=opset))
        assert report.passed and report.details["opset"] == opset, report.render()
    with pytest.raises(ModelToolError, match=f"choose from {oldest} to {newest}") as info:
        convert(src, str(tmp_path / "low.onnx"), _options(opset=oldest - 1))
    assert info.value.exit_code == 2 and "onnxruntime" in why
    proc = run_cli("convert", src, tmp_path / "high.onnx", "--opset", newest + 1, "--via", "tf")
    assert proc.returncode == 2 and f"--opset {newest + 1}: choose from {oldest} to {newest}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "high.onnx").exists()


# ---------------------------------------------------------------- keras.applications


@pytest.mark.slow
def test_application_every_deployment_option(tmp_path):
    """EfficientNetB0 (random weights, 32x32, logits out): each quantization kind, channels-first and
    optimized, verified by convert and against Keras's own outputs; int8 about 4x smaller, float16 2x.

    Its random logits are small (~1e-7), so any absolute tolerance passes them: the check against
    Keras is the scale-free cosine. (MobileNetV2's random logits, ~1e-11, flush to zero in float16;
    settling BatchNormalization statistics instead makes a random network chaotic, where int8 by
    onnxruntime and by TFLite alike falls to cosine ~0.8: README, Benchmark.)"""
    import keras

    import modeltool

    keras.utils.set_random_seed(0)
    model = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=10,
                                              classifier_activation=None)  # fmt: skip
    src = tmp_path / "effnet.keras"
    model.save(src)
    name = modeltool.load(src).inputs[0].name  # as `inspect` shows it
    data = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")
    want = model.predict(data, verbose=0)
    sizes = {}
    for kind in (None, *KINDS):
        out = str(tmp_path / f"{kind}.onnx")
        report = convert(src, out, _options(quantize=kind, inputs_as_nchw=(name,), optimize=True, batch=2))
        assert report.passed and report.written, report.render()
        assert report.details["transposes"] == 0 < report.details["transposes_channels_last"]
        sizes[kind] = report.size_after
        got = next(iter(_run_onnx(out, {name: data.transpose(0, 3, 1, 2)}).values()))
        assert _cosine(got, want) >= (TOLERANCES[kind].min_cosine if kind else 0.99999), (kind, _cosine(got, want))
    assert 3.5 < sizes[None] / sizes["int8"] < 4.1 and 1.8 < sizes[None] / sizes["float16"] < 2.1
