"""diff across formats: migrations are equal, real changes are named (layer, key, weight)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeltool.convert import convert
from modeltool.ops.diff import diff_files
from tests.conftest import CORPUS, FIXTURES, requires_corpus, run_cli

KERAS2 = ["conv_bn", "functional_multi_io", "nested", "reshaping", "rnn_text", "sequential_mlp", "shared_layers"]


@pytest.mark.parametrize("name", KERAS2)
def test_keras2_h5_equals_its_keras3_migration(tmp_path, name: str) -> None:
    """A Keras 2 .h5 and the .keras modeltool migrates it to: same layers, configs and weights."""
    migrated = tmp_path / f"{name}.keras"
    assert convert(FIXTURES / f"keras2/{name}.h5", str(migrated)).written
    report = diff_files(str(FIXTURES / f"keras2/{name}.h5"), str(migrated))
    assert report.equal, report.render()
    assert report.compared_weights == len(__import__("modeltool").load(migrated).weights)


def test_same_model_in_every_keras3_container() -> None:
    for other in ("h5", "weights.h5"):
        report = diff_files(str(FIXTURES / "keras3/conv_bn.keras"), str(FIXTURES / f"keras3/conv_bn.{other}"))
        if other == "h5":
            assert report.equal, report.render()
        else:  # a weights file has no layers: only the weights are compared, and they are equal
            assert report.equal and not report.architecture_compared and report.compared_weights == 17
    assert diff_files(str(FIXTURES / "tf/keras2_sm"), str(FIXTURES / "keras3/nested.keras")).equal


def test_changes_are_named(tmp_path) -> None:
    import keras

    def model(units: int, activation: str, extra: bool, seed: int):
        keras.utils.set_random_seed(seed)
        inp = keras.Input((6,), name="x")
        h = keras.layers.Dense(units, activation=activation, name="hidden")(inp)
        if extra:
            h = keras.layers.Dense(4, name="added")(h)
        return keras.Model(inp, keras.layers.Dense(2, name="out")(h))

    model(8, "relu", False, 1).save(tmp_path / "a.keras")
    model(8, "tanh", True, 1).save(tmp_path / "b.keras")
    model(8, "relu", False, 2).save(tmp_path / "c.keras")
    model(9, "relu", False, 1).save(tmp_path / "d.keras")
    report = diff_files(str(tmp_path / "a.keras"), str(tmp_path / "b.keras"))
    layers = {x["layer"]: x for x in report.layers}
    assert layers["added"]["change"] == "added"
    assert layers["hidden"]["keys"]["activation"] == ["relu", "tanh"]
    assert {w["weight"]: w["change"] for w in report.weights}["out/kernel"] == "shape"  # (8,2) vs (4,2)
    values = diff_files(str(tmp_path / "a.keras"), str(tmp_path / "c.keras"))
    assert not values.layers and {w["change"] for w in values.weights} == {"values"}
    shapes = diff_files(str(tmp_path / "a.keras"), str(tmp_path / "d.keras"))
    assert shapes.layers[0]["keys"]["units"] == [8, 9]
    assert diff_files(str(tmp_path / "a.keras"), str(tmp_path / "c.keras"), atol=10.0).equal


def test_renamed_by_map_and_cli(tmp_path) -> None:
    import keras

    def model(name: str):
        keras.utils.set_random_seed(3)
        inp = keras.Input((6,), name="x")
        return keras.Model(inp, keras.layers.Dense(2, name=name)(inp))

    model("fc1").save(tmp_path / "a.keras")
    model("dense_1").save(tmp_path / "b.keras")
    plain = diff_files(str(tmp_path / "a.keras"), str(tmp_path / "b.keras"))
    assert {x["change"] for x in plain.layers} == {"added", "removed"}
    mapped = diff_files(str(tmp_path / "a.keras"), str(tmp_path / "b.keras"), maps=["fc(\\d)=dense_\\1"])
    assert [(x["layer"], x["change"], x["from"]) for x in mapped.layers] == [("dense_1", "renamed", "fc1")]
    assert not mapped.weights and mapped.compared_weights == 2
    result = run_cli("diff", tmp_path / "a.keras", tmp_path / "b.keras", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["equal"] is False
    result = run_cli("diff", FIXTURES / "keras3/conv_bn.h5", FIXTURES / "keras3/conv_bn.keras")
    assert result.returncode == 0 and "equal" in result.stdout
    result = run_cli("diff", FIXTURES / "keras3/conv_bn.h5", tmp_path / "missing.keras")
    assert result.returncode == 2 and "missing.keras" in result.stderr


def test_weight_value_delta_is_the_real_one(tmp_path) -> None:
    import h5py

    path = tmp_path / "b.h5"
    path.write_bytes((FIXTURES / "keras3/sequential_mlp.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["model_weights/hidden"].attrs["weight_names"]]
        ds = f["model_weights/hidden"][next(n for n in names if n.endswith("kernel"))]
        arr = ds[()]
        arr[3, 4] += 0.25
        ds[...] = arr
    report = diff_files(str(FIXTURES / "keras3/sequential_mlp.h5"), str(path))
    assert [(w["weight"], w["change"]) for w in report.weights] == [("hidden/kernel", "values")]
    assert report.weights[0]["max_abs"] == pytest.approx(0.25, rel=1e-6)
    assert np.isfinite(report.weights[0]["max_abs"])


@requires_corpus
@pytest.mark.parametrize(
    "src,weights",
    [("k1_countnet_fcrnn_full/F-CRNN.h5", None), ("k2_fer_mini_xception/fer2013_mini_XCEPTION.102-0.66.hdf5", None),
     ("k1_chemts_gru_json/model.json", "k1_chemts_gru_weights/model.h5"),
     ("astryx_cudnnlstm_yaml/model.yaml", "astryx_cudnnlstm_weights/model.h5")],
)  # fmt: skip
def test_real_legacy_files_equal_their_migration(tmp_path, src: str, weights: str | None) -> None:
    """Keras 1 per-gate LSTM/GRU arrays, Keras 1 Conv1D kernels and CuDNN layouts compare equal to
    the Keras 3 layout modeltool migrates them to."""
    from modeltool.convert import ConvertOptions

    out = tmp_path / "migrated.keras"
    options = ConvertOptions(weights_from=str(CORPUS / weights) if weights else None)
    assert convert(CORPUS / src, str(out), options).written
    report = diff_files(str(CORPUS / (weights or src)), str(out))
    assert report.equal, report.render()
    assert report.compared_weights > 0


def test_layer_level_against_op_level_compares_weights_only(tmp_path) -> None:
    """An .h5 against its ONNX: no list of dozens of "changes" between layers and ops; the weights are
    found by value (transposed or not) and what the converter folded is named as such."""
    same = diff_files(str(FIXTURES / "keras3/sequential_mlp.h5"), str(FIXTURES / "graphs/sequential_mlp.onnx"))
    assert same.equal and not same.architecture_compared and not same.layers, same.render()
    assert any("op-level graph" in n for n in same.notes)
    folded = diff_files(str(FIXTURES / "keras3/conv_bn.h5"), str(FIXTURES / "graphs/conv_bn.onnx"))
    assert not folded.layers and folded.weights and {w["change"] for w in folded.weights} == {"no counterpart"}
    assert any("folded" in n for n in folded.notes)
    # a perturbed kernel is found missing: the comparison can fail
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(FIXTURES / "graphs/sequential_mlp.onnx"))
    init = proto.graph.initializer[0]
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] += 0.5
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(proto, str(tmp_path / "p.onnx"))
    changed = diff_files(str(FIXTURES / "keras3/sequential_mlp.h5"), str(tmp_path / "p.onnx"))
    assert len(changed.weights) == 1 and not changed.equal


def test_a_difference_is_a_result_not_an_error_line(tmp_path) -> None:
    result = run_cli("diff", FIXTURES / "keras3/conv_bn.h5", FIXTURES / "graphs/conv_bn.onnx")
    assert result.returncode == 1 and "different" in result.stdout
    assert "error" not in result.stderr
