"""The two ONNX routes: direct (from the IR, no TensorFlow) and tf (tf2onnx), and how `--via auto` picks.

Every fixture and every convertible corpus file is converted by both routes; both files are verified
by `convert` against the source's reference, they agree with each other, and they compute what the
file's writer computed (the stored fixture references of `make_references.py`, or Keras / tf_keras
run on the corpus file here), never modeltool against itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from modeltool.convert import convert
from modeltool.errors import UnsupportedError, UsageError
from modeltool.options import ConvertOptions
from tests.conftest import CORPUS, FIXTURES, ROOT, requires_corpus, run_cli
from tests.exporters.conftest import (
    CUSTOM_OBJECTS,
    KERAS2,
    KERAS3,
    WRITER_ATOL,
    WRITER_RTOL,
    assert_matches_writer,
    trained_looking,
)

SOURCES = [FIXTURES / "keras3" / n for n in KERAS3] + [FIXTURES / "keras2" / n for n in KERAS2]


def _options(**kw: object) -> ConvertOptions:
    return ConvertOptions(custom_objects=CUSTOM_OBJECTS, **kw)  # type: ignore[arg-type]


def _onnx_outputs(path: str, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    by_name = {n: feed[n] for n in names} if set(names) <= set(feed) else dict(zip(names, feed.values()))
    return session.run(None, by_name)


def _random_feed(path: str, seed: int = 5) -> dict[str, np.ndarray]:
    import onnx

    rng = np.random.default_rng(seed)
    feed = {}
    for i in onnx.load(path, load_external_data=False).graph.input:
        shape = [d.dim_value or 2 for d in i.type.tensor_type.shape.dim]
        if i.type.tensor_type.elem_type in (6, 7):  # int32 / int64 token ids
            feed[i.name] = rng.integers(0, 10, shape).astype("int32" if i.type.tensor_type.elem_type == 6 else "int64")
        else:
            feed[i.name] = rng.standard_normal(shape).astype("float32")
    return feed


def _agree(direct: str, tf: str) -> None:
    """The two routes' files give the same numbers on the same inputs."""
    feed = _random_feed(direct)
    for a, b in zip(_onnx_outputs(direct, feed), _onnx_outputs(tf, feed)):
        np.testing.assert_allclose(a, b, atol=WRITER_ATOL, rtol=WRITER_RTOL)


# ---------------------------------------------------------------- fixtures by both routes


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_converts_by_both_routes(src, tmp_path):
    direct, tf = str(tmp_path / "direct.onnx"), str(tmp_path / "tf.onnx")
    fixture = f"{src.parent.name}/{src.name.split('.')[0]}"
    if "subclassed" in src.name:  # its layers are Python code: only the TensorFlow route traces them
        with pytest.raises(UnsupportedError, match="subclassed model"):
            convert(src, direct, _options(via="direct"))
        report = convert(src, tf, _options())
        assert report.details["route"] == "tf" and "subclassed" in report.details["route_reason"]
        assert report.passed and report.written, report.render()
        assert_matches_writer(fixture, tf)
        return
    report = convert(src, direct, _options(via="direct"))
    assert report.passed and report.written, report.render()
    assert report.details["route"] == "direct"
    other = convert(src, tf, _options(via="tf"))
    assert other.passed and other.written and other.details["route"] == "tf", other.render()
    assert report.details["nodes"] <= other.details["nodes"], (report.details["nodes"], other.details["nodes"])
    assert_matches_writer(fixture, direct)
    assert_matches_writer(fixture, tf)
    _agree(direct, tf)
    kind = report.verification.reference_kind or ""
    if src.parent.name == "keras2" and "custom" not in src.name:
        assert kind.startswith("writer: tf_keras"), kind


def test_auto_takes_the_direct_route_and_says_why(tmp_path):
    report = convert(FIXTURES / "keras3/conv_bn.keras", str(tmp_path / "m.onnx"), _options())
    assert report.details["route"] == "direct"
    assert "every layer has a direct converter" in report.details["route_reason"]
    text = report.render()
    assert "route: direct" in text and "route_reason:" in text


def test_auto_falls_back_to_tensorflow_naming_the_layer(tmp_path):
    """A ConvLSTM2D (no direct converter): the direct route refuses it by name and auto converts
    through TensorFlow."""
    import keras

    inp = keras.Input((3, 6, 6, 2), name="frames")
    out = keras.layers.ConvLSTM2D(2, 3, name="conv_lstm")(inp)
    keras.Model(inp, out).save(tmp_path / "m.keras")
    report = convert(tmp_path / "m.keras", str(tmp_path / "m.onnx"), _options())
    assert report.details["route"] == "tf" and report.passed, report.render()
    assert "conv_lstm" in report.details["route_reason"] and "ConvLSTM2D" in report.details["route_reason"]
    proc = run_cli("convert", tmp_path / "m.keras", tmp_path / "d.onnx", "--via", "direct")
    assert proc.returncode == 2 and "conv_lstm" in proc.stderr and "--via tf" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "d.onnx").exists()


def test_masked_lstm_converts_directly_and_verifies(tmp_path):
    """Embedding(mask_zero=True) into an LSTM: a Scan on the direct route, verified by convert
    against Keras, and the same numbers as the TensorFlow route's file."""
    import keras

    inp = keras.Input((6,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(12, 4, mask_zero=True, name="embed")(inp)
    out = keras.layers.LSTM(3, name="masked_lstm")(x)
    keras.Model(inp, out).save(tmp_path / "m.keras")
    report = convert(tmp_path / "m.keras", str(tmp_path / "m.onnx"), _options())
    assert report.details["route"] == "direct" and report.passed and report.written, report.render()
    tf = convert(tmp_path / "m.keras", str(tmp_path / "t.onnx"), _options(via="tf"))
    assert tf.passed, tf.render()
    tokens = np.array([[3, 4, 0, 0, 0, 0], [0, 2, 0, 5, 6, 0]], "int32")
    a, b = _onnx_outputs(str(tmp_path / "m.onnx"), {"tokens": tokens}), _onnx_outputs(str(tmp_path / "t.onnx"),
                                                                                     {"tokens": tokens})  # fmt: skip
    np.testing.assert_allclose(a[0], b[0], atol=WRITER_ATOL, rtol=WRITER_RTOL)


def test_graph_sources_take_the_tensorflow_route(tmp_path):
    report = convert(FIXTURES / "tf/keras3_export", str(tmp_path / "m.onnx"))
    assert report.details["route"] == "tf" and "no Keras layers" in report.details["route_reason"]
    with pytest.raises(UnsupportedError, match="--via direct"):
        convert(FIXTURES / "tf/keras3_export", str(tmp_path / "d.onnx"), ConvertOptions(via="direct"))


def test_custom_layer_without_a_converter_goes_through_tensorflow(tmp_path):
    module = tmp_path / "objects.py"
    module.write_text((FIXTURES / "custom_objects.py").read_text().replace("def modeltool_onnx", "def _no_onnx"))
    options = ConvertOptions(custom_objects=str(module))
    report = convert(FIXTURES / "keras3/custom_layer.keras", str(tmp_path / "m.onnx"), options)
    assert report.details["route"] == "tf" and "modeltool_onnx" in report.details["route_reason"]
    assert report.passed, report.render()


# ---------------------------------------------------------------- what the direct file looks like


def test_names_dynamic_batch_and_input_shapes(tmp_path):
    import onnx

    src = FIXTURES / "keras3/functional_multi_io.keras"
    convert(src, str(tmp_path / "m.onnx"), _options(via="direct"))
    model = onnx.load(tmp_path / "m.onnx")
    assert [i.name for i in model.graph.input] == ["image", "meta"]
    assert [o.name for o in model.graph.output] == ["class_out", "reg_out"]
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.producer_name == "modeltool"
    options = _options(via="direct", input_shapes={"image": (1, 12, 12, 3), "meta": (1, 4)})
    assert convert(src, str(tmp_path / "f.onnx"), options).passed
    dims = [d.dim_value for d in onnx.load(tmp_path / "f.onnx").graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 12, 12, 3]
    with pytest.raises(UsageError, match="nope"):
        convert(src, str(tmp_path / "x.onnx"), _options(via="direct", input_shapes={"nope": (1, 2)}))


def test_inputs_as_nchw_are_native(tmp_path):
    """A channels-first input goes straight into the first convolution: no transpose anywhere in a
    CNN, and the verification feeds the reference the same data transposed (exact tolerance)."""
    import onnx

    out = str(tmp_path / "m.onnx")
    report = convert(FIXTURES / "keras3/conv_bn.keras", out, _options(via="direct", inputs_as_nchw=("pixels",)))
    assert report.passed, report.render()
    assert report.details["transposes"] == 0 < report.details["transposes_channels_last"]
    model = onnx.load(out)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:] == [3, 16, 16]
    assert not any(n.op_type == "Transpose" for n in model.graph.node)
    with pytest.raises(UsageError, match="rank 3"):
        convert(FIXTURES / "keras3/conv_1d_3d.keras", str(tmp_path / "x.onnx"),
                _options(via="direct", inputs_as_nchw=("signal",)))  # fmt: skip


def test_localize_pairs_direct_nodes_with_layers(tmp_path):
    """Nodes are named `<layer>/<op>`: a damaged layer is found by name."""
    import onnx
    from onnx import numpy_helper

    from modeltool.options import VerifyOptions
    from modeltool.verify import verify_files

    out = str(tmp_path / "m.onnx")
    convert(FIXTURES / "keras3/sequential_mlp.keras", out, _options(via="direct"))
    model = onnx.load(out)
    init = next(t for t in model.graph.initializer if t.name.startswith("hidden/"))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5 + 0.01, init.name))
    onnx.save(model, out)
    report = verify_files(FIXTURES / "keras3/sequential_mlp.keras", out, VerifyOptions(localize=True))
    assert not report.passed and report.localization.first_divergence.name == "hidden"


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_opsets(opset, tmp_path):
    import onnx

    report = convert(FIXTURES / "keras3/rnn_text.keras", str(tmp_path / "m.onnx"), _options(via="direct", opset=opset))
    assert report.passed and report.details["opset"] == opset, report.render()
    assert onnx.load(tmp_path / "m.onnx").opset_import[0].version == opset
    with pytest.raises(UsageError, match="--opset 9"):
        convert(FIXTURES / "keras3/rnn_text.keras", str(tmp_path / "x.onnx"), _options(via="direct", opset=9))


def test_external_data(tmp_path):
    report = convert(FIXTURES / "keras3/conv_bn.keras", str(tmp_path / "m.onnx"),
                     _options(via="direct", external_data_bytes=1024))  # fmt: skip
    assert report.passed and report.details["external_data"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_direct_route_imports_no_tensorflow(tmp_path):
    """Writing the file needs neither TensorFlow, nor tf2onnx, nor even Keras: proven in a fresh
    interpreter (verification needs a Keras runtime; tests/test_no_tensorflow_env.py runs it on JAX
    in an environment without TensorFlow)."""
    script = (
        "import sys, json\nfrom modeltool.convert import convert\nfrom modeltool.options import ConvertOptions\n"
        "for src in sys.argv[2:]:\n"
        "    r = convert(src, sys.argv[1], ConvertOptions(force=True, verify=False))\n"
        "    assert r.written and r.details['route'] == 'direct', r.render()\n"
        "heavy = ('tensorflow', 'tf2onnx', 'keras', 'tf_keras')\n"
        "print('MODULES' + json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    sources = [FIXTURES / "keras3/rnn_text.keras", FIXTURES / "keras2/conv_bn.h5", FIXTURES / "keras3/nested.h5"]
    args = [str(tmp_path / "m.onnx"), *map(str, sources)]
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.split("MODULES", 1)[1]) == []


# ---------------------------------------------------------------- corpus by both routes

#: id -> (file, weights or None, how its writer's numbers are computed here)
CORPUS_CASES = {
    "k1_countnet_fcrnn_full": ("k1_countnet_fcrnn_full/F-CRNN.h5", None, "keras1"),
    "k2_countnet_crnn_full": ("k2_countnet_crnn_full/CRNN.h5", None, "tf_keras"),
    "k2_fer_mini_xception": ("k2_fer_mini_xception/fer2013_mini_XCEPTION.102-0.66.hdf5", None, "tf_keras"),
    "k2_adam_h5_named_keras": ("k2_adam_h5_named_keras/model.keras", None, "tf_keras"),
    "k2_qusai_conv_autoencoder": ("k2_qusai_conv_autoencoder/autoencoder.h5", None, "tf_keras"),
    "tm_keras_model_ml4design": ("tm_keras_model_ml4design/keras_model.h5", None, "tf_keras"),
    "k2_udnet_lstm_seq2seq_s2s": ("k2_udnet_lstm_seq2seq_s2s/s2s.h5", None, "tf_keras"),
    "k1_chemts_gru": ("k1_chemts_gru_json/model.json", "k1_chemts_gru_weights/model.h5", "keras1"),
    "k3_kss_cnn_keras": ("k3_kss_cnn_keras/best-model.keras", None, "keras3"),
    "k3zip_aditya_potato_augmentation": ("k3zip_aditya_potato_augmentation/model.keras", None, "keras3"),
    # CuDNN layers run on GPUs only: the reference is Keras 3 running the portable LSTM they become
    "astryx_cudnnlstm": ("astryx_cudnnlstm_yaml/model.yaml", "astryx_cudnnlstm_weights/model.h5", "rebuild"),
}  # fmt: skip


def _writer_outputs(path, weights, how, feed: list[np.ndarray]) -> list[np.ndarray]:
    """What the file's writer computes on `feed`: Keras 3 loading a Keras 3 file, tf_keras loading a
    Keras 2 file (its config checked for Lambda layers first), tf_keras building a Keras 1 file from
    its config normalized to Keras 2 (no runtime loads Keras 1 files any more)."""
    import h5py

    from modeltool.loaders import load, source_options

    x = feed if len(feed) > 1 else feed[0]
    if how == "keras3":
        import keras

        out = keras.saving.load_model(path, compile=False)(x, training=False)
    elif how == "tf_keras":
        import tf_keras

        with h5py.File(path, "r") as f:
            config = f.attrs["model_config"]
        assert "Lambda" not in (config.decode() if isinstance(config, bytes) else config)
        out = tf_keras.models.load_model(path, compile=False)(x, training=False)
    else:
        from modeltool.keras.rebuild import build
        from modeltool.keras.tfkeras import build_tf_keras

        ir = load(path, **source_options(weights_from=weights))
        out = (build_tf_keras(ir) if how == "keras1" else build(ir))(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


@requires_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("case", sorted(CORPUS_CASES))
def test_corpus_file_converts_by_both_routes(case, tmp_path):
    rel, weights, how = CORPUS_CASES[case]
    weights = str(CORPUS / weights) if weights else None
    direct, tf = str(tmp_path / "direct.onnx"), str(tmp_path / "tf.onnx")
    report = convert(CORPUS / rel, direct, ConvertOptions(via="direct", weights_from=weights))
    assert report.passed and report.written and report.details["route"] == "direct", report.render()
    other = convert(CORPUS / rel, tf, ConvertOptions(via="tf", weights_from=weights))
    assert other.passed and other.written, other.render()
    _agree(direct, tf)
    feed = _random_feed(direct, seed=11)
    want = _writer_outputs(str(CORPUS / rel), weights, how, list(feed.values()))
    for have, expected in zip(_onnx_outputs(direct, feed), want):
        np.testing.assert_allclose(have, expected, atol=WRITER_ATOL, rtol=WRITER_RTOL)


# ---------------------------------------------------------------- keras.applications (slow)

APPLICATIONS = {"MobileNetV2": 64, "MobileNetV3Small": 64, "EfficientNetB0": 64, "ConvNeXtTiny": 64,
                "InceptionResNetV2": 75, "NASNetMobile": 64}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_application_direct_against_tensorflow_route(name, tmp_path):
    """Both routes verify; the direct file has no more nodes than tf2onnx's and agrees with it.
    Batch-normalization statistics are made trained-looking so that no layer is silently idle."""
    import keras

    size = APPLICATIONS[name]
    keras.utils.set_random_seed(1)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    trained_looking(model)
    src = tmp_path / f"{name}.keras"
    model.save(src)
    direct = convert(src, str(tmp_path / "d.onnx"), ConvertOptions(via="direct", batch=1))
    tf = convert(src, str(tmp_path / "t.onnx"), ConvertOptions(via="tf", batch=1))
    assert direct.passed and tf.passed, direct.render() + tf.render()
    assert direct.details["nodes"] <= tf.details["nodes"], (direct.details["nodes"], tf.details["nodes"])
    _agree(str(tmp_path / "d.onnx"), str(tmp_path / "t.onnx"))


def test_auto_takes_the_route_that_writes_an_old_opset(tmp_path):
    """--opset 11 with the default --via auto: the TensorFlow route writes it (the direct one starts at 13)."""
    import onnx

    report = convert(FIXTURES / "keras3/conv_bn.keras", str(tmp_path / "m.onnx"), _options(opset=11))
    assert report.passed, report.render()
    assert report.details["route"] == "tf" and "--opset 11" in report.details["route_reason"]
    assert onnx.load(tmp_path / "m.onnx").opset_import[0].version == 11
