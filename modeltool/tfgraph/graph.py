"""A TF GraphDef as the IR's op-level graph: nodes, boundary tensors and constant weights.

Frozen graphs and TF1 meta graphs name no inputs or outputs. Inputs are the Placeholders; outputs
are the nodes nothing consumes, less the bookkeeping ops (NoOp, Const, Assert, SaveV2, variable
initializers, summaries, ...). Both can be given by the user as `NAME[:SHAPE]` lists, with or
without the `:0` tensor suffix.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from modeltool.errors import UsageError
from modeltool.ir import Graph, Node, TensorSpec, Weight
from modeltool.tfgraph import protos
from modeltool.tfgraph.shapes import infer_shapes

#: ops that are never a model output even when nothing consumes them
NOT_OUTPUTS = {
    "NoOp", "Const", "Assert", "SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice",
    "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "Assign", "AssignVariableOp", "AssignAdd",
    "AssignSub", "VarHandleOp", "VarIsInitializedOp", "VariableV2", "Variable", "IsVariableInitialized",
    "Placeholder", "PlaceholderWithDefault", "ScalarSummary", "HistogramSummary", "MergeSummary",
    "ImageSummary", "Print", "PrintV2", "ReadVariableOp", "TensorSummaryV2",
    "WriteScalarSummary", "SummaryWriter", "FlushSummaryWriter", "ControlTrigger",
}  # fmt: skip
#: name scopes of training and saving machinery in TF1 graphs
NOT_OUTPUT_SCOPES = (
    "save/", "gradients/", "init", "report_uninitialized", "train/", "Adam", "GradientDescent", "Momentum",
    "RMSProp", "Adagrad", "beta1_power", "beta2_power", "global_step", "summaries/",
)  # fmt: skip
CONST_OPS = {"Const"}


def node_name(tensor: str) -> str:
    """'scope/op:1' -> 'scope/op'; '^ctrl' -> 'ctrl'."""
    return tensor.lstrip("^").split(":")[0]


def tensor_name(name: str) -> str:
    """'op' -> 'op:0' (a tensor name as TensorFlow wants it)."""
    return name if ":" in name else f"{name}:0"


def parse_io(values: str | Iterable[str] | None, what: str) -> list[tuple[str, tuple | None]]:
    """`--inputs X=1x784,keep_prob=()` style values (comma-separated or repeated) -> [(name, shape or
    None)].

    A shape follows `=`: dims joined by `x` (`?` for an open dim), `[1,784]`, or `()` for a scalar. A
    name keeps any `:` it has (`keep_prob:0` is a tensor name). The older `X:1x784` and `X[1,784]`
    spellings are read too; a bare number after `:` is always an output index (`op:0`)."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    out: list[tuple[str, tuple | None]] = []
    for item in items:
        for part in _split_top(item):
            part = part.strip()
            if not part:
                continue
            name, shape = part, None
            if "=" in part:
                name, _, dims = part.rpartition("=")
                dims = dims.strip()
                if not dims:
                    raise UsageError(f"--{what} {part!r}: nothing after '='; give the shape (X=1x784, X=[1,784]) "
                                     f"or () for a scalar ({name.strip()}=())")
                if dims in ("()", "[]", "scalar"):
                    shape = ()
                elif dims.startswith("["):
                    shape = _dims(dims.strip("[]").split(","), part, what)
                else:
                    shape = _dims(dims.split("x"), part, what)
            elif "[" in part:
                name, _, rest = part.partition("[")
                name = name.rstrip(":")
                shape = _dims(rest.rstrip("]").split(","), part, what)
            elif part.count(":") >= 1 and "x" in part.rsplit(":", 1)[1]:
                name, dims = part.rsplit(":", 1)
                shape = _dims(dims.split("x"), part, what)
            out.append((name.strip(), shape))
    return out


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _dims(raw: list[str], part: str, what: str) -> tuple:
    try:
        return tuple(None if d.strip() in ("?", "-1", "None", "") else int(d) for d in raw)
    except ValueError as exc:
        raise UsageError(f"--{what} {part!r}: shape must be integers or ? (e.g. X=1x28x28, X=[1,28,28], s=())") from exc


def _shape_attr(attrs: dict[str, Any]) -> tuple | None:
    if "shape" in attrs and attrs["shape"].HasField("shape"):
        return protos.shape_of(attrs["shape"].shape)
    shapes = attrs.get("_output_shapes")
    if shapes is not None and len(shapes.list.shape):
        return protos.shape_of(shapes.list.shape[0])
    return None


def _dtype_attr(attrs: dict[str, Any]) -> str | None:
    for key in ("dtype", "T", "DstT", "out_type"):
        if key in attrs and attrs[key].type:
            return protos.dtype_name(attrs[key].type)
    return None


def op_histogram(nodes: Iterable[Any]) -> dict[str, int]:
    """{op type: count}, most frequent first."""
    return dict(Counter(n.op for n in nodes).most_common())


def function_nodes(graph_def: Any) -> Iterator[Any]:
    """Every NodeDef of the graph and of its function library (TF2 graphs live in functions)."""
    yield from graph_def.node
    for fn in graph_def.library.function:
        yield from fn.node_def


def detect_outputs(graph_def: Any) -> list[str]:
    """Nodes nothing consumes that compute something (training/saving machinery skipped)."""
    consumed = {node_name(i) for n in graph_def.node for i in n.input}
    out = []
    for n in graph_def.node:
        if n.name in consumed or n.op in NOT_OUTPUTS:
            continue
        if n.name.startswith(NOT_OUTPUT_SCOPES) or "/" in n.name and n.name.split("/")[0] in ("save", "gradients"):
            continue
        if n.op.startswith(("Apply", "ResourceApply", "Save", "Restore")) or n.op.endswith("Summary"):
            continue
        out.append(n.name)
    return out


#: Placeholder names of training labels (a graph output computed from one is a loss, not a prediction)
LABEL_NAMES = re.compile(r"(?i)^(y|y_|y_true|labels?|targets?|gt|ground_?truth|.*_labels?|.*_targets?)$")


def boundary(
    graph_def: Any, inputs: list[tuple[str, tuple | None]], outputs: list[tuple[str, tuple | None]], source: str
) -> tuple[list[TensorSpec], list[TensorSpec], list[str]]:
    """Input and output specs: the user's names (checked against the graph) or the detected ones,
    and notes: default inputs keep only the Placeholders the outputs depend on, and a detected output
    computed from a label-like Placeholder is named as probably the loss, with the prediction to use."""
    by_name = {n.name: n for n in graph_def.node}
    if inputs:
        ins = []
        for name, shape in inputs:
            node = by_name.get(node_name(name))
            if node is None:
                raise UsageError(f"{source}: --inputs names {name!r}, which is not a node of the graph")
            attrs = protos.attrs_of(node)
            ins.append(TensorSpec(node_name(name) if name.endswith(":0") or ":" not in name else name,
                                  shape if shape is not None else _shape_attr(attrs), _dtype_attr(attrs)))  # fmt: skip
    else:
        ins = []
        for n in graph_def.node:
            if n.op == "Placeholder":
                attrs = protos.attrs_of(n)
                ins.append(TensorSpec(n.name, _shape_attr(attrs), _dtype_attr(attrs)))
    names = [name for name, _ in outputs] or detect_outputs(graph_def)
    outs = []
    for name in names:
        node = by_name.get(node_name(name))
        if node is None:
            raise UsageError(f"{source}: --outputs names {name!r}, which is not a node of the graph")
        attrs = protos.attrs_of(node)
        shown = node_name(name) if name.endswith(":0") or ":" not in name else name
        outs.append(TensorSpec(shown, _shape_attr(attrs), _dtype_attr(attrs)))
    notes: list[str] = []
    needed = _ancestors(by_name, [node_name(o.name) for o in outs])
    if not inputs and outs:
        unused = [s.name for s in ins if s.name not in needed]
        if unused and len(unused) < len(ins):
            ins = [s for s in ins if s.name in needed]
            notes.append(f"Placeholders no output depends on are not inputs: {', '.join(unused)}")
    if not outputs:
        notes += _loss_notes(by_name, outs, ins)
    return ins, outs, notes


def _ancestors(by_name: dict[str, Any], names: list[str]) -> set[str]:
    """Every node the named ones compute from (data inputs; control edges do not carry values)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo += [node_name(i) for i in by_name[name].input if not i.startswith("^")]
    return seen


def _loss_notes(by_name: dict[str, Any], outs: list[TensorSpec], ins: list[TensorSpec]) -> list[str]:
    """Detected outputs computed from a label-like Placeholder: name them, and the tensors the labels
    meet (the predictions) as what to pass to --outputs."""
    labels = {s.name for s in ins if LABEL_NAMES.match(s.name)}
    notes = []
    for out in outs:
        up = _ancestors(by_name, [node_name(out.name)])
        used = sorted(labels & up)
        if not used:
            continue
        candidates = []
        for name in up:
            data = [node_name(i) for i in by_name[name].input if not i.startswith("^")]
            with_labels = [d for d in data if labels & _ancestors(by_name, [d])]
            for d in data:
                if d not in with_labels and with_labels and by_name.get(d) is not None and by_name[d].op != "Const":
                    candidates.append(d)
        hint = f" (the prediction is probably {', '.join(sorted(set(candidates))[:3])})" if candidates else ""
        notes.append(
            f"detected output {out.name!r} is computed from {', '.join(used)}, which looks like training labels: "
            f"it is probably the loss; name the prediction with --outputs{hint}"
        )
    return notes


def frozen_variables(graph_def: Any) -> set[str]:
    """Constants that were variables before freezing: read through `<var>/read` (ref variables) or
    `.../ReadVariableOp` (resource variables) Identity nodes. Scalars among them are weights too."""
    out = set()
    for n in graph_def.node:
        if n.op == "Identity" and (n.name.endswith("/read") or n.name.endswith("ReadVariableOp")) and n.input:
            out.add(node_name(n.input[0]))
    return out


def op_graph(graph_def: Any, ins: list[TensorSpec], outs: list[TensorSpec], name: str | None = None) -> Graph:
    """The IR graph: one Node per NodeDef (data inputs only; control edges kept as flags).

    Output shapes are inferred from the inputs' shapes the way TensorFlow would at import (see
    `shapes.py`), so a frozen graph's outputs show `(None, 10)` rather than `?`."""
    variables = frozen_variables(graph_def)
    inferred = infer_shapes(graph_def, {spec.name: spec.shape for spec in ins})
    nodes = []
    for n in graph_def.node:
        attrs = protos.attrs_of(n)
        data = [i for i in n.input if not i.startswith("^")]
        shape = _const_shape(attrs) if n.op in CONST_OPS else _shape_attr(attrs)
        shapes = inferred.get(n.name) or [None]
        shapes = [shape if k == 0 and s is None else s for k, s in enumerate(shapes)]  # the recorded one as fallback
        node = Node(n.name, n.op, {}, [data] if data else [], shapes, params=0, trainable_params=0)
        if n.op in CONST_OPS and shape is not None:
            size = int(np.prod(shape)) if shape else 1
            if _is_weight(attrs, shape, n.name in variables):
                node.params, node.trainable_params = size, 0
        nodes.append(node)
    outs = [_with_inferred_shape(spec, inferred) for spec in outs]
    return Graph(nodes, ins, outs, "op", name)


def _with_inferred_shape(spec: TensorSpec, inferred: dict[str, list[tuple | None]]) -> TensorSpec:
    """The output spec with its inferred shape, which also reflects `--inputs` shapes and `op:k` indexes
    (the recorded `_output_shapes` attribute does neither); the recorded one where inference knows nothing."""
    op, _, index = spec.name.partition(":")
    shapes = inferred.get(op) or []
    k = int(index) if index.isdigit() else 0
    shape = shapes[k] if k < len(shapes) else None
    return TensorSpec(spec.name, shape, spec.dtype, spec.tensor) if shape is not None else spec


def _const_shape(attrs: dict[str, Any]) -> tuple | None:
    value = attrs.get("value")
    if value is None or not value.HasField("tensor"):
        return None
    return protos.shape_of(value.tensor.tensor_shape)


def _is_weight(attrs: dict[str, Any], shape: tuple, was_variable: bool) -> bool:
    """A constant counts as a weight when it is a float tensor (not a shape, axis or scalar knob),
    or a frozen variable of any rank."""
    dtype = protos.dtype_name(attrs["value"].tensor.dtype) if "value" in attrs else None
    return dtype in ("float32", "float64", "float16", "bfloat16") and (len(shape) >= 1 or was_variable)


def const_weights(graph_def: Any) -> list[Weight]:
    """Float constants of rank >= 1 and frozen variables as read-on-demand weights."""
    variables = frozen_variables(graph_def)
    out = []
    for n in graph_def.node:
        if n.op not in CONST_OPS:
            continue
        attrs = protos.attrs_of(n)
        shape = _const_shape(attrs)
        if shape is None or not _is_weight(attrs, shape, n.name in variables):
            continue
        tensor = attrs["value"].tensor
        out.append(
            Weight(
                n.name, n.name, "value", shape, protos.dtype_name(tensor.dtype), False, _tensor_reader(tensor, shape)
            )
        )
    return out


def _tensor_reader(tensor: Any, shape: tuple) -> Any:
    def read() -> Iterator[np.ndarray]:
        yield protos.tensor_value(tensor, shape)

    return read
