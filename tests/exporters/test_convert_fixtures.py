"""Every fixture model converted to every target: runnable targets verified against the source,
Keras targets read back by Keras 3 with identical weights."""

from __future__ import annotations

import numpy as np
import pytest

from modeltool.convert import ConvertOptions, convert
from modeltool.errors import UnsupportedError
from tests.conftest import FIXTURES
from tests.exporters.conftest import CUSTOM_OBJECTS, KERAS2, KERAS3, assert_matches_writer

SOURCES = [FIXTURES / "keras3" / n for n in KERAS3] + [FIXTURES / "keras2" / n for n in KERAS2]
RUNNABLE = ["x.onnx", "x.tflite", "saved/"]
KERAS_TARGETS = ["x.keras", "x.h5", "x.weights.h5", "x.json", "x.yaml", "x.ckpt"]


def _options(**kw: object) -> ConvertOptions:
    return ConvertOptions(custom_objects=CUSTOM_OBJECTS, **kw)  # type: ignore[arg-type]


#: models with ops TFLite has no builtin for (MaxPool3D): builtin-only conversion must refuse them
NEEDS_FLEX = {"conv_1d_3d"}


@pytest.mark.parametrize("dst", RUNNABLE)
@pytest.mark.parametrize("src", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_runnable_targets_verify(src, dst, tmp_path):
    out = str(tmp_path / dst) + ("/" if dst.endswith("/") else "")
    if dst.endswith(".tflite") and src.name.split(".")[0] in NEEDS_FLEX:
        with pytest.raises(UnsupportedError, match="--allow-flex"):
            convert(src, out, _options())
        assert not (tmp_path / dst).exists()
        # with --allow-flex it is written and says so; this interpreter has no Flex delegate to run it
        report = convert(src, out, _options(allow_flex=True))
        assert report.written and "MaxPool3D" in ",".join(report.details["flex_ops"])
        assert any("verification skipped" in w for w in report.warnings)
        return
    report = convert(src, out, _options())
    assert report.verification is not None
    assert report.passed, report.render()
    if src.parent.name == "keras3":  # Keras 3 wrote it: nothing in it is foreign to Keras 3
        assert not [w for w in report.warnings if "dropped" in w], report.warnings
    assert report.written and (tmp_path / dst.rstrip("/")).exists()
    assert [o.name for o in report.verification.outputs]  # every output compared
    for o in report.verification.outputs:
        assert o.max_abs is not None and o.cosine is not None
    # the written file computes what the fixture's own writer computed (stored by make_references.py)
    writer = assert_matches_writer(f"{src.parent.name}/{src.name.split('.')[0]}", out.rstrip("/"))
    assert writer.startswith("tf_keras" if src.parent.name == "keras2" else "keras")
    kind = report.verification.reference_kind or ""
    if src.parent.name == "keras2" and "custom" not in src.name:
        assert kind.startswith("writer: tf_keras"), kind  # Keras 2 files are verified against Keras 2 itself
    elif "custom" in src.name:  # a file naming code is never handed to a runtime's loader
        assert kind.startswith("rebuild"), kind
    else:  # Keras 3 loads the file itself (a subclassed model's layers are the user's class)
        assert kind.startswith("writer: Keras 3") and "loaded the file itself" in kind, kind


@pytest.mark.parametrize("dst", KERAS_TARGETS)
@pytest.mark.parametrize(
    "src", [s for s in SOURCES if "subclassed" not in s.name], ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_keras_targets_roundtrip(src, dst, tmp_path):
    report = convert(src, str(tmp_path / dst), _options())
    assert report.written, report.render()
    assert "roundtrip" in report.details
    if dst.endswith((".keras", ".h5", ".weights.h5")):
        # run and compared like any target: Keras loading the written file against the source's reference
        assert report.verification is not None and report.passed, report.render()
        assert [o.name for o in report.verification.outputs]


def test_migrated_keras_file_matches_legacy_h5_outputs(tmp_path):
    """A Keras 2 H5 migrated to .keras computes what Keras 2 computed: tf_keras loading the original
    file itself against Keras 3 loading the migrated one (neither through modeltool)."""
    import keras
    import tf_keras

    src = FIXTURES / "keras2" / "conv_bn.h5"
    convert(src, str(tmp_path / "m.keras"), _options())
    migrated = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    original = tf_keras.models.load_model(src, compile=False)
    x = np.random.default_rng(3).standard_normal((2, *migrated.inputs[0].shape[1:])).astype("float32")
    np.testing.assert_allclose(migrated.predict(x, verbose=0), original.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["float16", "dynamic", "int8"])
def test_quantized_tflite_verifies_with_quantized_tolerances(mode, tmp_path):
    report = convert(FIXTURES / "keras3" / "conv_bn.keras", str(tmp_path / "q.tflite"), _options(quantize=mode))
    assert report.passed, report.render()
    assert report.size_after < report.size_before
    if mode == "int8":
        assert any("RANDOM" in w for w in report.warnings)


def test_int8_calibration_from_npz(tmp_path):
    data = np.random.default_rng(0).standard_normal((8, 16, 16, 3)).astype("float32")
    np.savez(tmp_path / "cal.npz", pixels=data)
    options = _options(quantize="int8", calibration=str(tmp_path / "cal.npz"))
    report = convert(FIXTURES / "keras3" / "conv_bn.keras", str(tmp_path / "q.tflite"), options)
    assert report.passed, report.render()
    assert report.details["calibration"].startswith("cal.npz (8 samples)")
    assert not any("RANDOM" in w for w in report.warnings)


def test_onnx_keeps_names_and_dynamic_batch(tmp_path):
    import onnx

    convert(FIXTURES / "keras3" / "functional_multi_io.keras", str(tmp_path / "m.onnx"), _options())
    model = onnx.load(tmp_path / "m.onnx")
    assert [i.name for i in model.graph.input] == ["image", "meta"]
    assert [o.name for o in model.graph.output] == ["class_out", "reg_out"]
    dims = [d.dim_param for i in model.graph.input for d in i.type.tensor_type.shape.dim if not d.dim_value]
    assert dims and all(d == "batch" for d in dims)
    assert not any(
        d.startswith("unk__") for o in model.graph.output for d in [x.dim_param for x in o.type.tensor_type.shape.dim]
    )


def test_input_shape_fixes_onnx_shapes(tmp_path):
    import onnx

    options = _options(input_shapes={"pixels": (1, 16, 16, 3)})
    report = convert(FIXTURES / "keras3" / "conv_bn.keras", str(tmp_path / "m.onnx"), options)
    assert report.passed
    dims = [d.dim_value for d in onnx.load(tmp_path / "m.onnx").graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 16, 16, 3]


def test_rnn_tflite_has_only_builtin_ops(tmp_path):
    from modeltool.loaders import load

    report = convert(FIXTURES / "keras3" / "rnn_text.keras", str(tmp_path / "r.tflite"), _options())
    assert report.passed, report.render()
    assert not load(tmp_path / "r.tflite").metadata.extra.get("flex_ops")


def test_savedmodel_serving_signature_uses_source_names(tmp_path):
    import tensorflow as tf

    convert(FIXTURES / "keras2" / "functional_multi_io.h5", f"{tmp_path}/sm/", _options())
    sig = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    assert sorted(sig.structured_input_signature[1]) == ["image", "meta"]
    assert sorted(sig.structured_outputs) == ["class_out", "reg_out"]


def test_grouped_convolution_onnx_is_fixed_and_verified(tmp_path):
    """Keras 3 Conv2D(groups>1) runs as an XLA-compiled inner function that tf2onnx leaves as an
    invalid StatefulPartitionedCall node; modeltool traces it as a plain grouped Conv."""
    import keras
    import onnx

    inp = keras.Input((8, 8, 8), name="x")
    out = keras.layers.Conv2D(8, 3, groups=4, padding="same", name="gconv")(inp)
    keras.Model(inp, out).save(tmp_path / "g.keras")
    report = convert(tmp_path / "g.keras", str(tmp_path / "g.onnx"), _options())
    assert report.passed, report.render()
    conv = next(n for n in onnx.load(tmp_path / "g.onnx").graph.node if n.op_type == "Conv")
    assert next(a.i for a in conv.attribute if a.name == "group") == 4


def test_large_constants_are_detached_and_reattached(tmp_path):
    """The memory-saving path (constants kept out of tf2onnx) gives the same numbers."""
    report = convert(FIXTURES / "keras3" / "conv_bn.keras", str(tmp_path / "m.onnx"), _options(detach_bytes=64))
    assert report.passed, report.render()
    assert any("attached" in f for f in report.details["fixes"])


def test_external_data_onnx_loads_and_verifies(tmp_path):
    """Over the size limit (2 GB by default, lowered here) weights go to `<name>.onnx.data`."""
    options = _options(external_data_bytes=1024)
    report = convert(FIXTURES / "keras3" / "conv_bn.keras", str(tmp_path / "m.onnx"), options)
    assert report.passed, report.render()
    assert report.details["external_data"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_savedmodel_shown_by_saved_model_cli(tmp_path):
    import shutil
    import subprocess

    cli = shutil.which("saved_model_cli")
    if cli is None:
        pytest.skip("saved_model_cli is not on PATH")
    convert(FIXTURES / "keras3" / "functional_multi_io.keras", f"{tmp_path}/sm/", _options())
    cmd = [cli, "show", "--all", "--dir", str(tmp_path / "sm")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "signature_def['serving_default']" in text
    for key in ("inputs['image']", "inputs['meta']", "outputs['class_out']", "outputs['reg_out']"):
        assert key in text


def test_tf_keras_archive_with_its_optimizer_settings_converts_to_tflite(tmp_path):
    """A `.keras` saved by tf.keras 2.x after training holds its optimizer's config, with arguments
    Keras 3 refuses (`jit_compile`, `is_legacy_optimizer`); training settings change no inference and
    are dropped, with a note, on the routes that rebuild the model (TFLite's TensorFlow route here)."""
    import json
    import zipfile

    import tf_keras

    layers = tf_keras.layers
    model = tf_keras.Sequential([layers.Dense(4, input_shape=(3,), activation="relu"), layers.Dense(2)])
    model.compile(optimizer=tf_keras.optimizers.Adam(), loss="mse")
    model.fit(np.zeros((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)  # the optimizer is serialized in full
    model.save(tmp_path / "trained.keras")
    with zipfile.ZipFile(tmp_path / "trained.keras") as z:
        optimizer = json.loads(z.read("config.json"))["compile_config"]["optimizer"]
    assert isinstance(optimizer, dict) and "is_legacy_optimizer" in json.dumps(optimizer)
    report = convert(tmp_path / "trained.keras", str(tmp_path / "m.tflite"), _options(via="tf"))
    assert report.passed and report.written, report.render()
    assert any("compile_config" in w and "change no inference" in w for w in report.warnings), report.warnings
