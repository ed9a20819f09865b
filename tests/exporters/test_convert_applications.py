"""keras.applications built with weights=None at small input sizes: ONNX and TFLite, verified."""

from __future__ import annotations

import pytest

from modeltool.convert import ConvertOptions, convert

pytestmark = pytest.mark.slow

APPS = {"MobileNetV2": 32, "EfficientNetB0": 32, "DenseNet121": 32, "ConvNeXtTiny": 32}


@pytest.mark.parametrize("name", sorted(APPS))
def test_application_converts_and_verifies(name, tmp_path):
    import keras

    size = APPS[name]
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
    src = tmp_path / f"{name}.keras"
    model.save(src)
    for suffix in (".onnx", ".tflite"):
        report = convert(src, str(tmp_path / f"{name}{suffix}"), ConvertOptions(batch=1))
        assert report.passed and report.written, report.render()
