"""Rewrites of a TensorFlow graph before tf2onnx reads it, each working around a tf2onnx bug that
costs the written file its quality (never its numbers): the rewritten graph computes the same."""

from __future__ import annotations

from typing import Any

#: element-wise adds whose second operand tf2onnx's transpose optimizer folds into a convolution
ADDS = ("Add", "AddV2")


def vector_scalar_addends(graph_def: Any) -> int:
    """`x + c` with a scalar constant `c` becomes `x + [c]` where `x` has a known rank >= 1 (broadcasting
    gives the same values and shape); returns how many. In place, and idempotent.

    Why: tf2onnx 1.17's transpose optimizer raises on a bias-less Conv whose output, through a
    Transpose, meets an Add of a scalar constant (`max()` of the constant's empty shape in
    `TransposeOptimizer._add_handler`), and on that error it drops the whole transpose pass: every
    MobileNetV3 (hard-swish is `x + 3`) kept ~100 transposes, channels-first input or not."""
    nodes = {n.name: n for n in graph_def.node}
    candidates = [n for n in graph_def.node if n.op in ADDS and _scalar_const(nodes, _data_inputs(n)[1:2])]
    if not candidates:
        return 0
    ranks = _ranks(graph_def, [_data_inputs(n)[0] for n in candidates])
    from tensorflow.python.framework import tensor_util

    done = 0
    for node in candidates:
        first, second = _data_inputs(node)[:2]
        if (ranks.get(first) or 0) < 1:
            continue
        const = nodes[second.split(":")[0]]
        vector = graph_def.node.add()
        vector.CopyFrom(const)
        vector.name = _unique(nodes, const.name + "/as_vector")
        value = tensor_util.MakeNdarray(const.attr["value"].tensor).reshape(1)
        vector.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))
        nodes[vector.name] = vector
        node.input[list(node.input).index(second)] = vector.name
        done += 1
    return done


def _data_inputs(node: Any) -> list[str]:
    return [i for i in node.input if not i.startswith("^")]


def _scalar_const(nodes: dict[str, Any], inputs: list[str]) -> bool:
    if len(inputs) != 1 or ":" in inputs[0] and not inputs[0].endswith(":0"):
        return False
    const = nodes.get(inputs[0].split(":")[0])
    if const is None or const.op != "Const":
        return False
    shape = const.attr["value"].tensor.tensor_shape
    return not shape.unknown_rank and len(shape.dim) == 0


def _ranks(graph_def: Any, tensors: list[str]) -> dict[str, int | None]:
    """The static rank TensorFlow infers for each tensor (None where unknown)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    ranks: dict[str, int | None] = {}
    for name in tensors:
        try:
            ranks[name] = graph.get_tensor_by_name(name if ":" in name else name + ":0").shape.rank
        except (KeyError, ValueError):
            ranks[name] = None
    return ranks


def _unique(nodes: dict[str, Any], name: str) -> str:
    candidate, n = name, 1
    while candidate in nodes:
        candidate, n = f"{name}_{n}", n + 1
    return candidate
