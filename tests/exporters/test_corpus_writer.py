"""Real Keras 1/2 files converted to ONNX and TFLite compute what tf_keras computes from the file.

The expected numbers come from tf_keras in this test's own process: Keras 2 files are loaded by
tf_keras itself (each file's config is checked for Lambda layers first, so no bytecode runs); Keras 1
files, which no runtime loads any more, are built by tf_keras from their config normalized to Keras
2 spellings. modeltool's own verification must also have used tf_keras as its reference.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from modeltool.convert import ConvertOptions, convert
from tests.conftest import CORPUS, requires_corpus

pytestmark = [requires_corpus, pytest.mark.corpus]

#: id -> (file, weights file or None, TFLite input shapes for RNNs with open timesteps)
CASES = {
    "k2_countnet_crnn_full": ("k2_countnet_crnn_full/CRNN.h5", None, {}),  # channels_first on any CPU
    "k2_fer_mini_xception": ("k2_fer_mini_xception/fer2013_mini_XCEPTION.102-0.66.hdf5", None, {}),
    "k2_adam_h5_named_keras": ("k2_adam_h5_named_keras/model.keras", None, {}),
    "k2_qusai_conv_autoencoder": ("k2_qusai_conv_autoencoder/autoencoder.h5", None, {}),
    "tm_keras_model_ml4design": ("tm_keras_model_ml4design/keras_model.h5", None, {}),
    "k2_udnet_lstm_seq2seq_s2s": (
        "k2_udnet_lstm_seq2seq_s2s/s2s.h5", None, {"input_1": (1, 16, 74), "input_2": (1, 12, 101)},
    ),
    "k1_countnet_fcrnn_full": ("k1_countnet_fcrnn_full/F-CRNN.h5", None, {}),
    "k1_chemts_gru": ("k1_chemts_gru_json/model.json", "k1_chemts_gru_weights/model.h5", {}),
}  # fmt: skip


def _tf_keras_model(path, weights):
    """The writer's own model: tf_keras loads a Keras 2 file itself; Keras 1 files go through the
    config normalized to Keras 2 (modeltool.keras.tfkeras), the only way any runtime still runs them."""
    import tf_keras

    from modeltool.keras.semantics import writer_generation
    from modeltool.keras.tfkeras import build_tf_keras
    from modeltool.loaders import load, source_options

    ir = load(path, **source_options(weights_from=weights))
    if writer_generation(ir) == 1:
        return build_tf_keras(ir)
    with h5py.File(path, "r") as f:
        config = f.attrs["model_config"]
    assert "Lambda" not in (config.decode() if isinstance(config, bytes) else config)  # nothing runs code
    return tf_keras.models.load_model(path, compile=False)


@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_conversion_matches_tf_keras(case, suffix, tmp_path):
    from modeltool.sources import open_runner

    rel, weights, shapes = CASES[case]
    weights = str(CORPUS / weights) if weights else None
    out = str(tmp_path / f"m{suffix}")
    options = ConvertOptions(weights_from=weights, input_shapes=shapes if suffix == ".tflite" else {})
    report = convert(CORPUS / rel, out, options)
    assert report.passed and report.written, report.render()
    assert report.verification.reference_kind.startswith("writer: tf_keras"), report.verification.reference_kind

    model = _tf_keras_model(CORPUS / rel, weights)
    rng = np.random.default_rng(11)
    with open_runner(out) as runner:
        specs = runner.input_specs()
        feed = {}
        for spec, tensor in zip(specs, model.inputs):
            shape = tuple(d if d is not None else 2 for d in (spec.shape or tensor.shape))
            if "embedding" in json.dumps(model.get_config()).lower():
                feed[spec.name] = rng.integers(0, 10, size=shape).astype(spec.dtype)
            else:
                feed[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        got = list(runner.infer(feed).values())
    import tensorflow as tf

    args = [feed[s.name] for s in specs]
    # compiled by XLA: TensorFlow's CPU kernels lack NCHW convolutions where oneDNN is off (AMD, ARM)
    want = tf.function(lambda x: model(x, training=False), jit_compile=True)(args if len(args) > 1 else args[0])
    want = want if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want)
    for have, expected in zip(got, want):
        np.testing.assert_allclose(have, np.asarray(expected), atol=1e-4, rtol=1e-3)


def test_keras1_gru_keeps_its_hard_sigmoid():
    """Without the preserved Keras 1 hard sigmoid the rebuild differs from tf_keras; with it, it does not."""
    from modeltool.keras.rebuild import build
    from modeltool.keras.semantics import LEGACY_ACTIVATIONS
    from modeltool.loaders import load, source_options

    rel, weights, _ = CASES["k1_chemts_gru"]
    ir = load(CORPUS / rel, **source_options(weights_from=str(CORPUS / weights)))
    writer = _tf_keras_model(CORPUS / rel, str(CORPUS / weights))
    x = np.random.default_rng(0).integers(0, 64, size=(2, 82)).astype("int32")
    want = writer(x, training=False).numpy()
    notes: list[str] = []
    np.testing.assert_allclose(np.asarray(build(ir, notes=notes)(x)), want, atol=1e-5)
    assert any("hard_sigmoid kept" in n for n in notes)
    saved = dict(LEGACY_ACTIVATIONS)
    LEGACY_ACTIVATIONS.clear()  # Keras 3's own hard sigmoid: the test must be able to fail
    try:
        assert np.abs(np.asarray(build(ir)(x)) - want).max() > 1e-3
    finally:
        LEGACY_ACTIVATIONS.update(saved)
