"""ONNX and TFLite fixtures: what modeltool reads equals what onnx/onnxruntime and the TFLite
interpreter report for the same file."""

from __future__ import annotations

import numpy as np
import pytest

import modeltool
from tests.conftest import fixture_files

ONNX = fixture_files(("onnx",))
TFLITE = fixture_files(("tflite", "tflite_dynamic"))


@pytest.mark.parametrize("mid,kind,path", ONNX, ids=[m for m, _, _ in ONNX])
def test_onnx_fixture(mid, kind, path) -> None:
    import onnx
    import onnxruntime as ort

    model = modeltool.load(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [t.name for t in model.inputs] == [i.name for i in sess.get_inputs()]
    assert [t.name for t in model.outputs] == [o.name for o in sess.get_outputs()]
    for spec, inp in zip(model.inputs, sess.get_inputs()):
        assert [d if isinstance(d, int) else None for d in inp.shape] == list(spec.shape)
    proto = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert model.params.total == sum(a.size for a in inits.values())
    for w in model.weights:
        np.testing.assert_array_equal(w.value(), inits[w.name])


@pytest.mark.parametrize("mid,kind,path", TFLITE, ids=[f"{m}-{k}" for m, k, _ in TFLITE])
def test_tflite_fixture(mid, kind, path) -> None:
    import tensorflow as tf

    model = modeltool.load(path)
    interp = tf.lite.Interpreter(model_path=str(path))
    ins, outs = interp.get_input_details(), interp.get_output_details()
    assert [tuple(None if d < 0 else int(d) for d in i["shape_signature"]) for i in ins] == [
        t.shape for t in model.inputs
    ]
    assert [o["name"] for o in outs] == [t.name for t in model.outputs]
    assert all(w.value().size > 0 for w in model.weights)
    details = interp.get_tensor_details()
    int_weights = any(d["dtype"] in (np.int8, np.uint8, np.int16) and d["quantization_parameters"]["scales"].size
                      for d in details)  # fmt: skip
    assert model.metadata.extra["quantized"] == int_weights
    for detail in details:
        if detail["name"] in {w.name for w in model.weights} and detail["dtype"] == np.float32:
            try:
                expected = interp.get_tensor(detail["index"])
            except ValueError:
                continue
            got = next(w for w in model.weights if w.name == detail["name"]).value()
            np.testing.assert_array_equal(got.reshape(expected.shape), expected)
