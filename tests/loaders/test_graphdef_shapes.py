"""Shapes inferred from frozen GraphDefs without TensorFlow equal TensorFlow's own shape inference.

Each graph is built with `tf.compat.v1`, frozen to a .pb and loaded with `modeltool.load`. Every tensor
whose shape modeltool reports must have the shape TensorFlow gives it when importing the same .pb, every
tensor TensorFlow knows something about must be known to modeltool too (the ops used here are the ones
shapes.py covers), and the outputs must have the shapes of the graph as it was built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modeltool
from modeltool.ir import Model
from tests.conftest import CORPUS, requires_corpus


@pytest.fixture(scope="module")
def tf() -> Any:
    return pytest.importorskip("tensorflow")


def _tf_shape(tensor: Any) -> tuple | None:
    return None if tensor.shape.rank is None else tuple(tensor.shape.as_list())


def _freeze(tf: Any, graph: Any, outputs: list[str], path: Path) -> tuple[Model, Any]:
    """The graph with its variables turned into constants, written as a .pb: modeltool's model of it
    and TensorFlow's import of it."""
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), outputs)
    path.write_bytes(frozen.SerializeToString())
    return modeltool.load(path, outputs=outputs), _imported(tf, path)


def _imported(tf: Any, path: Path, input_map: dict | None = None) -> Any:
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    with tf.Graph().as_default() as graph:
        inputs = {name: make() for name, make in (input_map or {}).items()}
        tf.compat.v1.import_graph_def(graph_def, inputs, name="")
    return graph


def _assert_shapes_equal(model: Model, graph: Any) -> int:
    """Every node output: modeltool's shape is TensorFlow's where modeltool knows it, and modeltool knows
    it wherever TensorFlow knows the rank. Returns how many tensors were compared."""
    compared = 0
    for node in model.layers:
        outputs = graph.get_operation_by_name(node.name).outputs
        for k, tensor in enumerate(outputs):
            ours, theirs = (node.output_shapes[k] if k < len(node.output_shapes) else None), _tf_shape(tensor)
            where = f"{node.name}:{k} ({node.op})"
            assert ours == theirs or ours is None and theirs is None, f"{where}: modeltool {ours}, TensorFlow {theirs}"
            compared += 1
    return compared


def _assert_outputs_known(model: Model, graph: Any) -> None:
    """The outputs' shapes are known, and are those of the graph as built (before freezing)."""
    for spec in model.outputs:
        assert spec.shape is not None, f"output {spec.name} has no inferred shape"
        assert spec.shape == _tf_shape(graph.get_tensor_by_name(f"{spec.name}:0")), spec.name


def test_cnn_nhwc_shapes_equal_tensorflow(tf: Any, tmp_path: Path) -> None:
    """Conv (SAME, VALID, strided, dilated, explicit padding), depthwise conv, batch norm, pooling,
    flatten by Reshape(-1), dense layers and softmax, with a dynamic batch."""
    v1 = tf.compat.v1
    rng = np.random.default_rng(0)
    with tf.Graph().as_default() as g:

        def var(*shape: int) -> Any:
            return v1.Variable(rng.standard_normal(shape).astype(np.float32))

        x = v1.placeholder(tf.float32, [None, 28, 28, 3], "x")
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, var(3, 3, 3, 8), 1, "SAME"), var(8)))
        y = tf.nn.conv2d(y, var(5, 5, 8, 16), [1, 2, 2, 1], "VALID")
        y = tf.nn.conv2d(y, var(3, 3, 16, 16), 1, "VALID", dilations=2)
        y = tf.nn.conv2d(y, var(2, 2, 16, 16), 1, [[0, 0], [1, 2], [0, 1], [0, 0]])
        y = tf.nn.relu6(tf.nn.depthwise_conv2d(y, var(3, 3, 16, 2), [1, 1, 1, 1], "SAME"))
        y = v1.nn.fused_batch_norm(y, var(32), var(32), var(32), tf.abs(var(32)), is_training=False)[0]
        y = tf.nn.avg_pool2d(tf.nn.max_pool2d(y, 3, 2, "SAME"), 2, 1, "VALID")
        y = tf.reshape(y, [-1, int(np.prod(y.shape[1:]))])
        y = tf.nn.relu(tf.matmul(y, var(y.shape[1], 32)) + var(32))
        y = tf.nn.softmax(tf.nn.bias_add(tf.matmul(y, var(32, 10)), var(10)), name="probs")
        tf.argmax(y, axis=-1, name="label")
    model, imported = _freeze(tf, g, ["probs", "label"], tmp_path / "cnn.pb")
    assert _assert_shapes_equal(model, imported) > 40
    _assert_outputs_known(model, g)
    assert [(s.name, s.shape) for s in model.outputs] == [("probs", (None, 10)), ("label", (None,))]


def test_slicing_and_joining_shapes_equal_tensorflow(tf: Any, tmp_path: Path) -> None:
    """StridedSlice masks, Slice, Concat, Pack/Unpack, Split/SplitV, Transpose, Pad, Tile, Gather,
    Squeeze/ExpandDims, reductions, resizing, Select and broadcasting, on a dynamic batch."""
    v1 = tf.compat.v1
    with tf.Graph().as_default() as g:
        x = v1.placeholder(tf.float32, [None, 10, 6], "x")
        i = v1.placeholder(tf.int32, [], "i")
        slices = [x[:, 1:5], x[..., ::2], x[:, -1], x[:, tf.newaxis, 3:], x[0], x[:, ::-1, 1], x[..., 0, tf.newaxis],
                  x[:, 2:2], x[1:, :, :-1], x[:, 20:], x[:, -3:-1], x[..., i], x[:, i : i + 2], x[i]]  # fmt: skip
        parts = [tf.reshape(p, [-1]) for p in slices]
        joined = [
            tf.concat([x, x * 2.0], axis=-1), tf.concat([x, x], 1), tf.stack([x, x, x], axis=1),
            tf.unstack(x, axis=1)[3], tf.split(x, 2, axis=2)[1], tf.split(x, [2, -1, 3], axis=1)[1],
            tf.transpose(x, [2, 0, 1]), tf.pad(x, [[0, 0], [1, 2], [3, 4]]),
            tf.pad(x, [[0, 0], [1, 1], [2, 2]], mode="REFLECT"), tf.slice(x, [0, 1, 2], [-1, 3, -1]),
            tf.tile(x, [2, 1, 3]), tf.gather(x, [0, 2, 4], axis=1), tf.gather(x, [[1, 2]], axis=-1),
            tf.squeeze(tf.expand_dims(x, -1), [3]), tf.reduce_mean(x, axis=[1, -1], keepdims=True),
            tf.reduce_sum(x, axis=1), tf.reduce_max(x), tf.argmax(x, axis=2),
            tf.where(x > 0.0, x, -x), tf.maximum(x, tf.ones([1, 6])), tf.math.squared_difference(x, 1.0),
            tf.sigmoid(x) * tf.tanh(x) - tf.exp(-tf.abs(x)) / tf.sqrt(tf.square(x) + 1.0),
            tf.cast(tf.math.floordiv(x, 2.0), tf.int32), tf.nn.leaky_relu(tf.nn.elu(x)), tf.nn.log_softmax(x),
            tf.matmul(x, tf.ones([6, 4])), tf.matmul(x, tf.ones([3, 10, 6]), transpose_b=True)[0],
            v1.image.resize_bilinear(tf.expand_dims(x, -1), [20, 12]),
        ]  # fmt: skip
        tf.identity(tf.concat(parts, 0), name="sliced")
        for k, t in enumerate(joined):
            tf.identity(t, name=f"joined_{k}")
    names = ["sliced"] + [f"joined_{k}" for k in range(len(joined))]
    model, imported = _freeze(tf, g, names, tmp_path / "slicing.pb")
    assert _assert_shapes_equal(model, imported) > 100
    _assert_outputs_known(model, g)


def test_dynamic_batch_shape_chains_equal_tensorflow(tf: Any, tmp_path: Path) -> None:
    """Shape -> StridedSlice -> Pack -> Reshape with a dynamic batch, Fill/zeros of a computed shape,
    an input of unknown rank (a dropout keep probability), a transposed convolution with a constant
    output shape, NCHW and 3-D convolutions."""
    v1 = tf.compat.v1
    with tf.Graph().as_default() as g:
        x = v1.placeholder(tf.float32, [None, 784], "x")
        keep = v1.placeholder(tf.float32, None, "keep")
        batch = tf.shape(x)[0]
        seq = tf.reshape(x, tf.stack([batch, 28, 28]))
        flat = tf.reshape(seq, [batch, -1])
        state = tf.zeros(tf.stack([batch, 16]))
        steps = tf.unstack(seq, axis=1)
        h = state
        for step in steps[:3]:
            h = tf.tanh(tf.matmul(tf.concat([step, h], 1), tf.ones([44, 16])) + 0.1)
        drop = tf.floor(keep + v1.random_uniform(tf.shape(h))) * h / keep
        tf.identity(tf.raw_ops.MatMul(a=drop, b=tf.ones([16, 10])), name="logits")  # as TF 1 wrote it
        tf.identity(flat, name="flat")
        image = tf.reshape(x, [-1, 28, 28, 1])
        up = tf.nn.conv2d_transpose(image, tf.ones([3, 3, 4, 1]), tf.stack([batch, 56, 56, 4]), 2)
        tf.identity(up, name="up")
        nchw = tf.nn.conv2d(tf.reshape(x, [-1, 1, 28, 28]), tf.ones([3, 3, 1, 2]), [1, 1, 2, 2], "SAME",
                            data_format="NCHW")  # fmt: skip
        tf.identity(tf.nn.bias_add(nchw, tf.ones([2]), data_format="NCHW"), name="nchw")
        vol = tf.nn.max_pool3d(tf.nn.conv3d(tf.reshape(x, [-1, 7, 8, 14, 1]), tf.ones([3, 3, 3, 1, 2]),
                                            [1, 1, 1, 1, 1], "SAME"), 2, 2, "VALID")  # fmt: skip
        tf.identity(vol, name="vol")
    model, imported = _freeze(tf, g, ["logits", "flat", "up", "nchw", "vol"], tmp_path / "dynamic.pb")
    assert _assert_shapes_equal(model, imported) > 40
    _assert_outputs_known(model, g)
    shapes = {s.name: s.shape for s in model.outputs}
    # Reshape(seq, [batch, -1]): with the batch unknown too, TensorFlow solves neither dim
    assert shapes == {"logits": (None, 10), "flat": (None, None), "up": (None, 56, 56, 4), "nchw": (None, 2, 14, 14),
                      "vol": (None, 3, 4, 7, 2)}  # fmt: skip


def test_input_shape_override_reaches_outputs(tf: Any, tmp_path: Path) -> None:
    """`--inputs x:2x784` fixes the batch: the outputs get the shapes TensorFlow gives the graph
    imported with that input."""
    v1 = tf.compat.v1
    with tf.Graph().as_default() as g:
        x = v1.placeholder(tf.float32, [None, 784], "x")
        h = tf.reshape(x, tf.stack([tf.shape(x)[0], 28, 28]))
        tf.nn.softmax(tf.matmul(tf.reduce_mean(h, axis=1), tf.ones([28, 10])), name="probs")
    path = tmp_path / "fixed.pb"
    _freeze(tf, g, ["probs"], path)
    model = modeltool.load(path, inputs="x:2x784")
    fixed = _imported(tf, path, {"x:0": lambda: v1.placeholder(tf.float32, [2, 784], "fixed_x")})
    assert model.outputs[0].shape == _tf_shape(fixed.get_tensor_by_name("probs:0")) == (2, 10)
    assert model.get_layer("Reshape").output_shape == (2, 28, 28)


def test_unknown_ops_stay_unknown(tmp_path: Path) -> None:
    """An op shapes.py does not know has an unknown shape, and so have elementwise ops after it; an op
    whose input rank is fixed (MatMul) still knows what TensorFlow would. No TensorFlow needed."""
    text = """
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "shape" value { shape { dim { size: -1 } dim { size: 8 } } } } }
node { name: "custom" op: "MyCustomOp" input: "x" }
node { name: "act" op: "Relu" input: "custom" }
node { name: "w" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 8 } dim { size: 3 } }
                                             float_val: 0.5 } } } }
node { name: "dense" op: "MatMul" input: "act" input: "w" }
node { name: "out" op: "Softmax" input: "dense" }
"""
    path = tmp_path / "custom.pbtxt"
    path.write_text(text)
    model = modeltool.load(path)
    shapes = {n.name: n.output_shape for n in model.layers}
    assert shapes == {"x": (None, 8), "custom": None, "act": None, "w": (8, 3), "dense": (None, 3),
                      "out": (None, 3)}  # fmt: skip
    assert model.outputs[0].shape == (None, 3)


@requires_corpus
@pytest.mark.parametrize("rel", ["frozen_curiousily_har_lstm_tf1/frozen_har.pb", "tf2onnx_lstm_frozen/frozen.pb"])
def test_corpus_graphs_equal_tensorflow_import(tf: Any, rel: str) -> None:
    """Unrolled LSTM graphs from the wild: every tensor as TensorFlow's import_graph_def infers it."""
    path = CORPUS / rel
    model, imported = modeltool.load(path), _imported(tf, path)
    assert _assert_shapes_equal(model, imported) >= len(model.layers)
    _assert_outputs_known(model, imported)
