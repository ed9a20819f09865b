"""Real Keras 1/2 files that Keras 3 refuses to load convert to ONNX and TFLite and verify."""

from __future__ import annotations

import pytest

from modeltool.convert import ConvertOptions, convert
from modeltool.errors import UnsafeContentError
from tests.conftest import CORPUS, requires_corpus

pytestmark = [requires_corpus, pytest.mark.corpus]

CASES = {
    "k1_countnet_fcrnn_full": ("k1_countnet_fcrnn_full/F-CRNN.h5", None, {}),
    "k2_countnet_crnn_full": ("k2_countnet_crnn_full/CRNN.h5", None, {}),
    "k2_fer_mini_xception": ("k2_fer_mini_xception/fer2013_mini_XCEPTION.102-0.66.hdf5", None, {}),
    "k2_adam_h5_named_keras": ("k2_adam_h5_named_keras/model.keras", None, {}),
    "k1_chemts_gru": ("k1_chemts_gru_json/model.json", "k1_chemts_gru_weights/model.h5", {}),
    # CuDNNLSTM with open timesteps: TFLite builtins need them fixed
    "astryx_cudnnlstm": ("astryx_cudnnlstm_yaml/model.yaml", "astryx_cudnnlstm_weights/model.h5",
                         {"cu_dnnlstm_1_input": (None, 10, 5)}),
}  # fmt: skip


@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_legacy_corpus_file_converts_and_verifies(case, suffix, tmp_path):
    rel, weights, shapes = CASES[case]
    opts = ConvertOptions(weights_from=str(CORPUS / weights) if weights else None,
                          input_shapes=shapes if suffix == ".tflite" else {})
    report = convert(CORPUS / rel, str(tmp_path / f"m{suffix}"), opts)
    assert report.passed and report.written, report.render()


def test_lambda_model_refuses_without_unsafe(tmp_path):
    with pytest.raises(UnsafeContentError, match="lambda_1"):
        convert(CORPUS / "carnd_patrick_lambda_h5" / "model.h5", str(tmp_path / "m.onnx"))
    assert not (tmp_path / "m.onnx").exists()


def test_rnn_to_tflite_takes_its_shapes_from_input_data(tmp_path):
    """Open timesteps with `--input data.npz` and no --input-shape: the data's shapes fix them (said)."""
    import numpy as np

    np.savez(tmp_path / "x.npz", cu_dnnlstm_1_input=np.random.default_rng(0).standard_normal((2, 10, 5)).astype("f4"))
    opts = ConvertOptions(weights_from=str(CORPUS / "astryx_cudnnlstm_weights/model.h5"),
                          input_data=str(tmp_path / "x.npz"))  # fmt: skip
    report = convert(CORPUS / "astryx_cudnnlstm_yaml/model.yaml", str(tmp_path / "m.tflite"), opts)
    assert report.passed and report.written, report.render()
    assert any("fixed from --input x.npz: cu_dnnlstm_1_input=2,10,5" in w for w in report.warnings), report.warnings
