"""Weights outside the ONNX protobuf (`--external-data single|per-tensor`, automatic over 2 GB) and the
2 GiB limit of a TFLite flatbuffer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import FIXTURES, run_cli

SRC = FIXTURES / "keras3/conv_bn.keras"


@pytest.mark.parametrize("layout", ["single", "per-tensor"])
def test_external_data_layouts_verify_and_load_alone(layout, tmp_path):
    out = tmp_path / "m.onnx"
    done = run_cli("convert", SRC, out, "--external-data", layout, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] and report["details"]["external_data"]
    import onnx

    proto = onnx.load(str(out), load_external_data=False)
    locations = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations, "no weight went to external data"
    if layout == "single":
        assert locations == {"m.onnx.data"} and (tmp_path / "m.onnx.data").is_file()
    else:
        assert all(loc.startswith("m.onnx.data.d/") for loc in locations)
        assert sorted(p.name for p in (tmp_path / "m.onnx.data.d").iterdir()) == sorted(
            loc.split("/", 1)[1] for loc in locations
        )
    # the files beside it are complete: a copy of the folder runs on its own, as the in-protobuf model does
    import onnxruntime as ort

    inline = tmp_path / "inline.onnx"
    assert run_cli("convert", SRC, inline, "--no-verify").returncode == 0
    moved = tmp_path / "moved"
    import shutil

    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("moved", "inline.onnx"))
    a = ort.InferenceSession(str(moved / "m.onnx"), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(inline), providers=["CPUExecutionProvider"])
    name = a.get_inputs()[0].name
    shape = [d if isinstance(d, int) else 1 for d in a.get_inputs()[0].shape]
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    np.testing.assert_array_equal(a.run(None, {name: x})[0], b.run(None, {name: x})[0])


def test_external_data_is_onnx_only(tmp_path):
    done = run_cli("convert", SRC, tmp_path / "m.tflite", "--external-data", "single")
    assert done.returncode == 2 and "--external-data applies to onnx" in done.stderr


def test_tflite_over_the_flatbuffer_limit_is_refused_with_sizes():
    """The check reads the stored weights' shapes (never their values): 700M float32 parameters
    (2.6 GiB) cannot be a TFLite file, quantized to int8 (0.65 GiB) they can."""
    from modeltool.errors import UnsupportedError
    from modeltool.exporters.tflite import check_flatbuffer_size
    from modeltool.formats import Format
    from modeltool.ir import Metadata, Model, Weight
    from modeltool.options import ConvertOptions

    weights = [Weight(f"dense_{i}/kernel", f"dense_{i}", "kernel", (10_000, 10_000), "float32") for i in range(7)]
    model = Model("big.keras", Metadata(Format.KERAS_V3, "Keras 3 archive", 0), None, weights, [], [])
    with pytest.raises(UnsupportedError, match=r"big.keras: its weights are 2\.6\d GB.*2 GiB.*--quantize dynamic"):
        check_flatbuffer_size(model, ConvertOptions())
    check_flatbuffer_size(model, ConvertOptions(quantize="int8"))
