"""The graph rewrites done before tf2onnx: same values as TensorFlow computes on the original graph."""

from __future__ import annotations

import numpy as np

from modeltool.exporters.tf2onnx_fixes import vector_scalar_addends


def _graph():
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 2], name="image")
        scalar = tf.compat.v1.placeholder(tf.float32, [], name="scalar")
        unknown = tf.compat.v1.placeholder(tf.float32, None, name="unknown")
        three = tf.constant(3.0, name="three")
        tf.identity(image + three, name="gate")  # rank 4: rewritten
        tf.identity(scalar + three, name="sum")  # a scalar result stays a scalar
        tf.identity(unknown + three, name="open")  # rank unknown: left alone
    return graph.as_graph_def()


def _run(graph_def, feed):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(["gate:0", "sum:0", "open:0"], feed)


def test_scalar_addend_becomes_a_vector_only_where_the_result_cannot_change():
    feed = {"image:0": np.random.default_rng(0).standard_normal((2, 4, 4, 2)).astype("float32"),
            "scalar:0": np.float32(1.5), "unknown:0": np.ones((3,), "float32")}  # fmt: skip
    original = _graph()
    want = _run(original, feed)
    rewritten = _graph()
    assert vector_scalar_addends(rewritten) == 1
    assert vector_scalar_addends(rewritten) == 0  # idempotent: the vector is no scalar
    got = _run(rewritten, feed)
    for a, b in zip(want, got):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert "three" in {n.name for n in rewritten.node}  # the shared scalar still feeds the other adds
