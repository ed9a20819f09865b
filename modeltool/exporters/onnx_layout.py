"""Channels-first boundaries for ONNX (`--inputs-as-nchw` / `--outputs-as-nchw`), and counting what it saves.

TensorFlow computes convolutions channels-last (NHWC) and ONNX channels-first (NCHW), so tf2onnx
wraps every convolution in a pair of transposes and its optimizer then cancels the pairs that meet.
What it cannot cancel are the transposes at the edges: NHWC data enters through one Transpose, and a
global pooling head reads the last feature map through another. Asked for an NCHW input (tf2onnx's
own `inputs_as_nchw`, which inserts NCHW->NHWC right after that input), the entry transpose meets the
first convolution's and both cancel. `sink_transposes_into_reductions` removes the one at the head:
a ReduceMean/ReduceMax over the spatial axes of a transposed tensor is the same reduction over the
permuted axes of the untransposed one whenever the axes that remain keep their order. A CNN written
with a channels-first input then has no transpose left at all (MobileNetV2, ResNet50: 0).

The user names inputs and outputs as the source does; tf2onnx wants graph tensor names, so
`layout_tensors` maps them and refuses names that do not exist or tensors that are not rank 4 (tf2onnx
would only log a warning and write a channels-last boundary the user did not ask for).
"""

from __future__ import annotations

from typing import Any

from modeltool.errors import UsageError
from modeltool.ir import TensorSpec
from modeltool.sources import OnnxGraph

#: reductions whose axes can absorb a transpose (keepdims=0: the order of the remaining axes matters)
REDUCTIONS = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSumExp", "ReduceSumSquare", "ReduceLogSum"}  # fmt: skip


def layout_tensors(graph: OnnxGraph, specs: list[TensorSpec], inputs: tuple[str, ...],
                   outputs: tuple[str, ...]) -> tuple[list[str], list[str]]:  # fmt: skip
    """The graph tensors behind the user's `--inputs-as-nchw` / `--outputs-as-nchw` names.
    Inputs must be rank 4 (their rank is known before conversion); outputs are checked after it
    (`check_output_ranks`), when their rank is known."""
    by_name = {name: tensor for tensor, name in graph.inputs.items()}
    shapes = {s.name: s.shape for s in specs}
    in_tensors = []
    for name in inputs:
        if name not in by_name:
            raise UsageError(f"--inputs-as-nchw {name}: no input named so; inputs: {', '.join(by_name)}")
        shape = shapes.get(name)
        if shape is not None and len(shape) != 4:
            raise UsageError(
                f"--inputs-as-nchw {name}: the input has rank {len(shape)} (shape {list(shape)}); only rank-4 "
                "image inputs (N, H, W, C) can be made channels-first"
            )
        in_tensors.append(by_name[name])
    out_by_name = {name: tensor for tensor, name in graph.outputs.items()}
    out_tensors = []
    for name in outputs:
        if name not in out_by_name:
            raise UsageError(f"--outputs-as-nchw {name}: no output named so; outputs: {', '.join(out_by_name)}")
        out_tensors.append(out_by_name[name])
    return in_tensors, out_tensors


def check_output_ranks(proto: Any, outputs: tuple[str, ...]) -> None:
    """Refuse `--outputs-as-nchw` for an output that is not rank 4 (tf2onnx leaves it channels-last)."""
    ranks = {o.name: len(o.type.tensor_type.shape.dim) for o in proto.graph.output}
    for name in outputs:
        if ranks.get(name, 4) != 4:
            raise UsageError(
                f"--outputs-as-nchw {name}: the output has rank {ranks[name]}; only rank-4 feature maps "
                "(N, H, W, C) can be made channels-first"
            )


def activation_transposes(proto: Any, weights: set[str] | None = None) -> int:
    """Transposes of data computed at run time: the ones a layout costs. A Transpose of an initializer,
    a Constant or one of `weights` (graph inputs standing for weights) is a weight layout, folded
    before the file is written."""
    graph = proto.graph
    constants = {t.name for t in graph.initializer} | (weights or set())
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return sum(1 for n in graph.node if n.op_type == "Transpose" and n.input[0] not in constants)


def sink_transposes_into_reductions(proto: Any) -> int:
    """`Reduce(Transpose(x, perm), axes, keepdims=0)` -> `Reduce(x, perm[axes])` when the axes that
    remain appear in the same order in `x`: the result is the same tensor, without the transpose."""
    numpy_helper = _numpy_helper()
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    sunk = 0
    for node in list(graph.node):
        if node.op_type not in REDUCTIONS or _attr(node, "keepdims", 1) != 0:
            continue
        transpose = producer.get(node.input[0])
        if transpose is None or transpose.op_type != "Transpose" or transpose.output[0] in outputs:
            continue
        perm = _attr(transpose, "perm", None)
        axes = _reduction_axes(node, inits, numpy_helper)
        if perm is None or axes is None:
            continue
        rank = len(perm)
        axes = sorted(a % rank for a in axes)
        kept = [perm[i] for i in range(rank) if i not in axes]
        if kept != sorted(kept):
            continue
        new_axes = sorted(perm[a] for a in axes)
        _set_reduction_axes(graph, node, new_axes, inits, numpy_helper, uses)
        node.input[0] = transpose.input[0]
        uses[transpose.output[0]] -= 1
        if uses[transpose.output[0]] == 0:
            graph.node.remove(transpose)
        sunk += 1
    return sunk


def _numpy_helper() -> Any:
    from modeltool.deps import require

    return require("onnx.numpy_helper")


def _attr(node: Any, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            return list(a.ints) if a.ints else a.i
    return default


def _reduction_axes(node: Any, inits: dict, numpy_helper: Any) -> list[int] | None:
    """The axes of a reduction: the `axes` attribute (ReduceMean before opset 18) or its constant input."""
    if len(node.input) > 1 and node.input[1]:
        init = inits.get(node.input[1])
        return None if init is None else [int(a) for a in numpy_helper.to_array(init).reshape(-1)]
    axes = _attr(node, "axes", None)
    return None if axes is None else list(axes)


def _set_reduction_axes(graph: Any, node: Any, axes: list[int], inits: dict, numpy_helper: Any,
                        uses: dict[str, int]) -> None:  # fmt: skip
    import numpy as np

    if len(node.input) > 1 and node.input[1]:
        name = node.input[1]
        array = np.asarray(axes, dtype=np.int64)
        if uses.get(name, 0) > 1:  # shared with another reduction: give this one its own
            name = f"{name}_sunk_{node.name or node.output[0]}"
            node.input[1] = name
            uses[name] = 1
        else:
            graph.initializer.remove(inits[name])
        tensor = numpy_helper.from_array(array, name)
        graph.initializer.append(tensor)
        inits[name] = tensor
        return
    for a in node.attribute:
        if a.name == "axes":
            del a.ints[:]
            a.ints.extend(axes)
