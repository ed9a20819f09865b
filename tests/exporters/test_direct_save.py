"""The direct route writes its weights one at a time: into the model's own bytes (`Built.save`) or
into an external data file at page-aligned offsets (`Built.save_external`). Both files must be
exactly the model `onnx.save_model` writes from the whole protobuf."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FIXTURES

MODELS = ["keras3/conv_bn.keras", "keras3/functional_multi_io.keras", "hub/bert_tiny.keras"]


def _ir(path):
    """The IR the direct route writes (a KerasHub backbone's as the library builds it)."""
    import modeltool
    from modeltool.sources import open_source

    ir = modeltool.load(path)
    if ir.graph is not None and "library" in ir.graph.nodes[0].flags:
        pytest.importorskip("keras_hub")
        from modeltool.options import ConvertOptions

        ir = open_source(path, ConvertOptions()).direct_ir()
    return ir


def _built(ir):
    from modeltool.exporters.direct.export import build
    from modeltool.sources.keras import ir_boundary_names

    return build(ir, ir_boundary_names(ir))


@pytest.mark.parametrize("name", MODELS)
def test_streamed_model_is_the_whole_protobuf(tmp_path, name):
    import onnx

    ir = _ir(FIXTURES / name)
    _built(ir).save(str(tmp_path / "streamed.onnx"))
    onnx.save_model(_built(ir).proto, str(tmp_path / "whole.onnx"))
    streamed, whole = onnx.load(str(tmp_path / "streamed.onnx")), onnx.load(str(tmp_path / "whole.onnx"))
    assert len(streamed.graph.initializer) == len(whole.graph.initializer) > 0
    assert streamed == whole  # the same message, field by field
    onnx.checker.check_model(str(tmp_path / "streamed.onnx"), full_check=True)


@pytest.mark.parametrize("per_tensor", [False, True])
def test_external_data_streamed_aligned_and_equal(tmp_path, per_tensor):
    import onnx
    from onnx import numpy_helper

    from modeltool.exporters.direct.export import EXTERNAL_ALIGNMENT, EXTERNAL_MIN_BYTES

    ir = _ir(FIXTURES / MODELS[0])
    where = "m.onnx.data.d" if per_tensor else "m.onnx.data"
    _built(ir).save_external(str(tmp_path / "m.onnx"), where, per_tensor)
    whole = {t.name: numpy_helper.to_array(t) for t in _built(ir).proto.graph.initializer}
    lean = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    external = [t for t in lean.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and all(numpy_helper.to_array(t).nbytes < EXTERNAL_MIN_BYTES for t in lean.graph.initializer
                            if t.data_location != onnx.TensorProto.EXTERNAL)  # fmt: skip
    if not per_tensor:
        offsets = [int(e.value) for t in external for e in t.external_data if e.key == "offset"]
        assert offsets and all(o % EXTERNAL_ALIGNMENT == 0 for o in offsets)
    full = onnx.load(str(tmp_path / "m.onnx"))
    for tensor in full.graph.initializer:
        np.testing.assert_array_equal(numpy_helper.to_array(tensor), whole[tensor.name])


def test_large_models_are_mapped_not_prepacked(tmp_path, monkeypatch):
    """From NO_PREPACK_BYTES of weights (the model and its data file beside it), onnxruntime sessions
    skip prepacking, so the page-aligned external data is mapped rather than held twice; the model
    still computes the same."""
    import onnxruntime as ort

    from modeltool.runners import onnxruntime as runner

    ir = _ir(FIXTURES / MODELS[0])
    path = tmp_path / "m.onnx"
    _built(ir).save_external(str(path), "m.onnx.data")
    size = runner.model_bytes(str(path))
    assert size == path.stat().st_size + (tmp_path / "m.onnx.data").stat().st_size
    small = runner.session_options(ort, str(path))
    monkeypatch.setattr(runner, "NO_PREPACK_BYTES", size)
    large = runner.session_options(ort, str(path))
    assert large.get_session_config_entry("session.disable_prepacking") == "1"
    with pytest.raises(RuntimeError):  # not set at all below the threshold
        small.get_session_config_entry("session.disable_prepacking")
    feed = {i.name: np.ones([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
            for i in ort.InferenceSession(str(path)).get_inputs()}  # fmt: skip
    a = ort.InferenceSession(str(path), small).run(None, feed)
    b = ort.InferenceSession(str(path), large).run(None, feed)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
