"""The reference does not depend on modeltool's reading of the file: a bug planted in that reading
(two gate blocks of an LSTM kernel swapped as the weights are read) reaches the converted model but
not the reference, which the writer's runtime loads from the file itself, so the conversion fails."""

from __future__ import annotations

import numpy as np
import pytest

from modeltool.convert import convert
from modeltool.ir import Weight
from modeltool.options import ConvertOptions
from tests.conftest import FIXTURES


@pytest.fixture
def swapped_lstm_gates(monkeypatch):
    """modeltool's reading of every forward-LSTM kernel returns its input and forget gate blocks
    swapped (what a wrong legacy-layout rule would do)."""
    read = Weight.value

    def corrupted(self: Weight) -> np.ndarray:
        value = read(self)
        if "forward_lstm" in self.name and self.role == "kernel":
            units = value.shape[-1] // 4
            value = value.copy()
            first, second = value[..., :units].copy(), value[..., units : 2 * units].copy()
            value[..., :units], value[..., units : 2 * units] = second, first
        return value

    monkeypatch.setattr(Weight, "value", corrupted)


@pytest.mark.parametrize(("src", "runtime"), [("keras3/rnn_text.keras", "Keras 3"), ("keras2/rnn_text.h5", "tf_keras")])
def test_a_wrong_weight_reading_fails_the_conversion(swapped_lstm_gates, src, runtime, tmp_path):
    report = convert(FIXTURES / src, str(tmp_path / "m.onnx"), ConvertOptions(via="direct"))
    assert report.verification.reference_kind.startswith(f"writer: {runtime}"), report.verification.reference_kind
    assert "loaded the file itself" in report.verification.reference_kind
    assert not report.passed and not report.written, report.render()
    assert any(o.verdict.startswith("values differ") for o in report.verification.outputs), report.render()
    assert not (tmp_path / "m.onnx").exists()
    # what this guards against: modeltool's own reading on both sides agrees with itself
    same = convert(FIXTURES / src, str(tmp_path / "r.onnx"), ConvertOptions(via="direct", reference_mode="rebuild"))
    assert same.passed, same.render()


@pytest.mark.parametrize("src", ["keras3/rnn_text.keras", "keras2/rnn_text.h5"])
def test_the_same_conversion_passes_with_the_right_reading(src, tmp_path):
    report = convert(FIXTURES / src, str(tmp_path / "m.onnx"), ConvertOptions(via="direct"))
    assert report.passed and "loaded the file itself" in report.verification.reference_kind, report.render()


def test_a_file_holding_code_is_rebuilt_and_the_report_says_why(tmp_path):
    report = convert(FIXTURES / "keras3/custom_layer.keras", str(tmp_path / "m.onnx"),
                     ConvertOptions(custom_objects=str(FIXTURES / "custom_objects.py")))  # fmt: skip
    assert report.passed, report.render()
    kind = report.verification.reference_kind
    assert kind.startswith("rebuild") and "is of custom class" in kind and "never handed to a loader" in kind
