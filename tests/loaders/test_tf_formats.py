"""SavedModels, checkpoints and frozen GraphDefs: what modeltool reads without TensorFlow equals
what TensorFlow itself reports for the same files (variables, values, signatures, nodes)."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

import modeltool
from modeltool.errors import LoadError, UsageError
from modeltool.tfgraph import protos
from modeltool.tfgraph.bundle import Bundle, resolve_prefix, snappy_decompress
from tests.conftest import CORPUS, FIXTURES, manifest, requires_corpus, run_cli

TF = FIXTURES / "tf"
MANIFEST = manifest()
CHECKPOINTS = ["tf1_ckpt/model", "keras3_ckpt", "keras2_ckpt/weights"]
SAVED_MODELS = ["keras3_export", "module_sm", "keras2_sm", "tf1_builder"]


def _tf_messages() -> dict:
    from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2, tensor_pb2, tensor_shape_pb2
    from tensorflow.core.protobuf import (
        meta_graph_pb2,  # fmt: skip
        saved_model_pb2,
        saved_object_graph_pb2,
        tensor_bundle_pb2,
        trackable_object_graph_pb2,
    )

    tog = trackable_object_graph_pb2.TrackableObjectGraph
    return {
        "SavedModel": saved_model_pb2.SavedModel, "MetaGraphDef": meta_graph_pb2.MetaGraphDef,
        "MetaInfoDef": meta_graph_pb2.MetaGraphDef.MetaInfoDef, "SignatureDef": meta_graph_pb2.SignatureDef,
        "TensorInfo": meta_graph_pb2.TensorInfo, "AssetFileDef": meta_graph_pb2.AssetFileDef,
        "GraphDef": graph_pb2.GraphDef, "NodeDef": node_def_pb2.NodeDef, "AttrValue": attr_value_pb2.AttrValue,
        "ListValue": attr_value_pb2.AttrValue.ListValue, "TensorShapeProto": tensor_shape_pb2.TensorShapeProto,
        "Dim": tensor_shape_pb2.TensorShapeProto.Dim, "TensorProto": tensor_pb2.TensorProto,
        "SavedObjectGraph": saved_object_graph_pb2.SavedObjectGraph,
        "SavedObject": saved_object_graph_pb2.SavedObject, "SavedVariable": saved_object_graph_pb2.SavedVariable,
        "SavedUserObject": saved_object_graph_pb2.SavedUserObject, "TrackableObjectGraph": tog,
        "TrackableObject": tog.TrackableObject, "ObjectReference": tog.TrackableObject.ObjectReference,
        "SerializedTensor": tog.TrackableObject.SerializedTensor,
        "SlotVariableReference": tog.TrackableObject.SlotVariableReference,
        "BundleEntryProto": tensor_bundle_pb2.BundleEntryProto,
        "BundleHeaderProto": tensor_bundle_pb2.BundleHeaderProto,
    }  # fmt: skip


def test_proto_declarations_match_tensorflow() -> None:
    """modeltool's own protobuf declarations use TensorFlow's field numbers and names."""
    from tensorflow.core.framework import types_pb2

    checked = 0
    for name, tf_cls in _tf_messages().items():
        tf_fields = {f.name: f.number for f in tf_cls.DESCRIPTOR.fields}
        for number, field, _, _ in protos.SCHEMA[name]:
            assert tf_fields.get(field) == number, f"{name}.{field}"
            checked += 1
    assert checked > 80
    for number, dt_name in protos.DT_NAMES.items():
        assert types_pb2.DataType.Value(dt_name) == number


def test_snappy_blocks() -> None:
    # literal "abc" then a copy of 6 bytes at offset 3 (overlapping): "abcabcabc"
    assert snappy_decompress(bytes([9, 2 << 2, *b"abc", ((6 - 4) << 2) | 1, 3])) == b"abcabcabc"
    with pytest.raises(ValueError):
        snappy_decompress(bytes([9, 2 << 2, *b"abc", ((6 - 4) << 2) | 1, 9]))


@pytest.mark.parametrize("rel", CHECKPOINTS)
def test_checkpoint_variables_equal_tensorflow(rel: str) -> None:
    import tensorflow as tf

    prefix = resolve_prefix(str(TF / rel))
    reader = tf.train.load_checkpoint(prefix)
    bundle = Bundle(prefix)
    shapes = reader.get_variable_to_shape_map()
    assert set(bundle.entries) == set(shapes)
    for key, entry in bundle.entries.items():
        assert list(entry.shape) == shapes[key]
        if entry.dtype != "string":
            got = np.concatenate([c for c in bundle.reader(key)()] or [np.zeros(0)]).reshape(entry.shape)
            np.testing.assert_array_equal(got, reader.get_tensor(key))


@requires_corpus
@pytest.mark.parametrize(
    "rel", ["tf2onnx_regression_ckpt/checkpoint/model", "ckpt_tf2_jessie_keras_weights/training_2/cp-0000.ckpt",
            "serving_tf2_half_plus_two/00000123/variables/variables"],
)  # fmt: skip
def test_corpus_checkpoint_variables_equal_tensorflow(rel: str) -> None:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(CORPUS / rel))
    bundle = Bundle(str(CORPUS / rel))
    for key, entry in bundle.entries.items():
        assert list(entry.shape) == reader.get_variable_to_shape_map()[key]
        if entry.dtype not in ("string",):
            got = np.concatenate(list(bundle.reader(key)())).reshape(entry.shape)
            np.testing.assert_array_equal(got, reader.get_tensor(key))


def test_tf1_graph_in_three_containers() -> None:
    """y = a * w + b as a Saver checkpoint (+ .meta), a frozen .pb and .pbtxt: same boundary and weights."""
    entry = MANIFEST["tf/tf1"]
    for rel in ("tf1_ckpt", "tf1_frozen.pb", "tf1_frozen.pbtxt"):
        model = modeltool.load(TF / rel)
        assert [(t.name, t.shape, t.dtype) for t in model.inputs] == [("a", (None,), "float32")], rel
        assert [t.name for t in model.outputs] == ["y"], rel
        values = {w.name: float(w.value()) for w in model.weights}
        assert values == {"w": entry["w"], "b": entry["b"]}, rel
    ckpt = modeltool.load(TF / "tf1_ckpt")
    assert ckpt.metadata.extra["checkpoint_kind"].startswith("name-based")
    assert [[n, s] for n, s in sorted((w.name, list(w.shape)) for w in ckpt.weights)] == sorted(entry["variables"])


def test_graphdef_op_histogram_equals_tensorflow() -> None:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((TF / "tf1_frozen.pb").read_bytes())
    model = modeltool.load(TF / "tf1_frozen.pb")
    assert model.metadata.extra["op_histogram"] == dict(Counter(n.op for n in graph_def.node))
    assert [n.name for n in model.layers] == [n.name for n in graph_def.node]


def test_graph_boundary_options() -> None:
    model = modeltool.load(TF / "tf1_frozen.pb", inputs="a:[4]", outputs="add:0")
    assert [(t.name, t.shape) for t in model.inputs] == [("a", (4,))]
    assert [t.name for t in model.outputs] == ["add"]
    model = modeltool.load(TF / "tf1_frozen.pb", inputs="a:0[2]", outputs="mul,y")
    assert (
        model.inputs[0].shape == (2,)
        and model.inputs[0].name == "a"
        and [t.name for t in model.outputs] == ["mul", "y"]
    )
    with pytest.raises(UsageError, match="not a node"):
        modeltool.load(TF / "tf1_frozen.pb", outputs="nope")


@pytest.mark.parametrize("rel", SAVED_MODELS)
def test_saved_model_signatures_equal_tensorflow(rel: str) -> None:
    import tensorflow as tf

    model = modeltool.load(TF / rel)
    loaded = tf.saved_model.load(str(TF / rel))
    expected = MANIFEST[f"tf/{rel}"]["signatures"] if f"tf/{rel}" in MANIFEST else MANIFEST["tf/tf1"]["signatures"]
    assert {s.name: sorted(t.name for t in s.inputs) for s in model.signatures} == expected
    for sig in model.signatures:
        fn = loaded.signatures[sig.name]
        specs = fn.structured_input_signature[1]
        for t in sig.inputs:
            assert t.shape == tuple(specs[t.name].shape.as_list()) and t.dtype == specs[t.name].dtype.name
            assert t.tensor
        assert sorted(t.name for t in sig.outputs) == sorted(fn.structured_outputs)
    # the variables' values equal the ones TensorFlow restores
    ours = sorted((w.value() for w in model.weights), key=lambda a: (a.shape, a.tobytes()))
    variables = getattr(loaded, "variables", None) or [loaded.w, loaded.b]  # a tf.Module keeps its own names
    theirs = sorted((v.numpy() for v in variables), key=lambda a: (a.shape, a.tobytes()))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    assert model.metadata.extra["tags"] == [["serve"]]


def test_keras2_saved_model_layer_architecture() -> None:
    model = modeltool.load(TF / "keras2_sm")
    entry = MANIFEST["tf/keras2_sm"]
    assert model.metadata.extra["architecture"] == "keras_metadata.pb"
    assert model.metadata.extra["origin"].startswith("Keras 2")
    assert model.graph is not None and model.graph.level == "layer"
    assert model.params.total == entry["params"]
    source = modeltool.load(FIXTURES / (entry["source"] + ".h5"))
    assert [n.name for n in model.layers] == [n.name for n in source.layers]
    ours = {w.name: w.value() for w in model.weights}
    assert set(ours) == {w.name for w in source.weights}


def test_module_saved_model_origin_and_functions() -> None:
    model = modeltool.load(TF / "module_sm")
    assert model.metadata.extra["origin"] == "tf.saved_model.save (TF2 object graph)"
    assert {w.name for w in model.weights} == {"w", "b"}
    assert model.signatures[0].name == "serving_default"
    assert model.metadata.extra["op_histogram"].get("MatMul") == 1
    tf1 = modeltool.load(TF / "tf1_builder")
    assert tf1.metadata.extra["origin"].startswith("TF1 SavedModelBuilder")
    assert [s.name for s in tf1.signatures] == ["predict_y"]


@pytest.mark.parametrize("case", ["keras3_ckpt", "keras2_ckpt"])
def test_object_checkpoint_with_config_maps_layers_like_tensorflow(case: str) -> None:
    """Variables mapped to layers by object path equal what TF's own restore puts in each layer."""
    entry = MANIFEST[f"tf/{case}"]
    model = modeltool.load(FIXTURES / entry["files"]["checkpoint"], config=str(FIXTURES / entry["config"]))
    text = (FIXTURES / entry["config"]).read_text()
    if case == "keras3_ckpt":
        import keras
        import tensorflow as tf

        native = keras.models.model_from_json(text)
        tf.train.Checkpoint(model=native).read(
            resolve_prefix(str(FIXTURES / entry["files"]["checkpoint"]))
        ).expect_partial()
    else:
        import tf_keras

        native = tf_keras.models.model_from_json(text)
        native.load_weights(str(FIXTURES / entry["files"]["checkpoint"])).expect_partial()
    expected = {}
    for layer in native.layers:
        for i, v in enumerate(layer.weights):
            expected[(layer.name, i)] = np.asarray(v.numpy())
    got: dict = {}
    for w in model.weights:
        idx = sum(1 for k in got if k[0] == w.layer)
        got[(w.layer, idx)] = w.value()
    assert set(got) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value)
    assert model.config is not None and model.params.total == native.count_params()


def test_checkpoint_without_architecture_lists_variables() -> None:
    model = modeltool.load(TF / "keras3_ckpt")
    assert model.graph is None and model.config is None
    assert any("--config" in w for w in model.warnings)
    assert model.metadata.extra["training_state_variables"] == 1  # save_counter
    assert all("_operations" in w.name for w in model.weights)


@requires_corpus
def test_corpus_tf_formats_inspect() -> None:
    hp = modeltool.load(CORPUS / "serving_tf2_half_plus_two/00000123")
    assert [s.name for s in hp.signatures][0] == "serving_default" and len(hp.signatures) == 6
    assert hp.metadata.extra["assets"] == ["foo.txt"]
    assert {w.name: float(w.value()) for w in hp.weights} == {"a": 0.5, "b": 2.0, "c": 3.0}
    rust = modeltool.load(CORPUS / "rust_keras_multi_input_sm/keras_multiple_inputs_saved_model")
    assert [t.name for t in rust.inputs] == ["test_in1", "test_in2"] and rust.params.total == 25
    assert rust.metadata.extra["training_state_variables"] > 0  # Adam slots, not counted as params
    jessie = modeltool.load(CORPUS / "ckpt_tf2_jessie_keras_weights/training_2")
    assert jessie.params.total == 407050 and [n.name for n in jessie.layers] == ["dense_10", "dropout_5", "dense_11"]
    assert any("cp-0050" in w for w in jessie.warnings)
    reg = modeltool.load(CORPUS / "tf2onnx_regression_ckpt/checkpoint", inputs="X", outputs="pred")
    assert [t.name for t in reg.inputs] == ["X"] and [t.name for t in reg.outputs] == ["pred"]
    lstm = modeltool.load(CORPUS / "tf2onnx_lstm_frozen/frozen.pb")
    assert [t.name for t in lstm.inputs] == ["X", "keep_prob"] and [t.name for t in lstm.outputs] == ["output"]


def test_bad_inputs_exit_2_with_one_line(tmp_path) -> None:
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    no_shard = tmp_path / "ck"
    no_shard.mkdir()
    shutil.copy(TF / "keras3_ckpt/ckpt-1.index", no_shard / "ckpt-1.index")
    not_graph = tmp_path / "model.pb"
    not_graph.write_bytes(np.random.default_rng(0).bytes(2048))
    truncated = tmp_path / "trunc"
    shutil.copytree(TF / "module_sm", truncated)
    data = truncated / "variables/variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:10])
    cases = [(empty, "neither a SavedModel"), (no_shard / "ckpt-1", "data shard ckpt-1.data-00000-of-00001 is missing"),
             (not_graph, "not a GraphDef"), (truncated, "truncated"),
             (TF / "module_sm/saved_model.pb", "pass the directory")]  # fmt: skip
    for path, message in cases:
        result = run_cli("inspect", path)
        assert result.returncode == 2, (path, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    with pytest.raises(LoadError):
        modeltool.load(no_shard / "ckpt-1")


def test_object_paths_resolve_to_layers() -> None:
    """Keras 2 tracking names, Keras 3 operation indices and plain attribute names, nested models."""
    from modeltool.tfgraph.variables import resolve

    graph = modeltool.load(FIXTURES / "keras2/nested.json").graph
    assert resolve("model/head/kernel", graph) == ("head", "", "kernel")
    assert resolve("layer_with_weights-2/bias", graph) == ("head", "", "bias")
    assert resolve("layer-3/_kernel", graph) == ("head", "", "kernel")
    assert resolve("_operations/1/layer_with_weights-0/kernel", graph)[0].startswith("inner_block/")
    assert resolve("model/unknown/kernel", graph) is None
    rnn = modeltool.load(FIXTURES / "keras3/rnn_text.json").graph
    lstm = next(n.name for n in rnn.nodes if n.op == "Bidirectional")
    assert resolve(f"{lstm}/backward_layer/cell/recurrent_kernel", rnn) == (
        lstm, "backward_layer/cell", "recurrent_kernel")  # fmt: skip
