"""Passes over a tf2onnx result, in the order `run_all` applies them; each does one thing.

1. attach_initializers: the large weights kept out of tf2onnx become initializers.
2. fold_transposes: `Transpose(initializer)` (tf2onnx's NHWC->NCHW kernel layout) is precomputed.
3. fold_conv_scale: `Mul(Conv(x, W, B), c)` with a per-channel constant `c` (a BatchNormalization's
   scale, which tf2onnx folds itself only when W is a constant) becomes `Conv(x, W*c, B*c)`.
4. fix_grouped_convs: TF's grouped convolution (Keras 3 `Conv2D(groups>1)`, ConvNeXt) has no
   `group` attribute; tf2onnx writes a plain Conv that no runtime accepts. Set `group` from the
   input channels (shape inference on a weightless copy) and the kernel's channels.
5. rewrite_erfc: TF's Erfc (from Keras's exact GELU) has no ONNX op and tf2onnx leaves it as is;
   erfc(x) = 1 - erf(x).
6. fuse_hard_sigmoid: the Keras 1/2 hard sigmoid, which tf2onnx writes as Mul/Add/Min/Max (or Clip),
   becomes the one ONNX op that defines it: `HardSigmoid(alpha=0.2, beta=0.5)`.
7. rename_boundary: graph inputs/outputs get the source model's names.
8. name_dynamic_dims: `unk__12` dimension names become `batch` / `<input>_dim<i>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modeltool.deps import require

KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}


def run_all(proto: Any, detached: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str]) -> list[str]:
    """Apply every pass in order; returns a line per fix applied (for the report)."""
    passes: list[tuple[Callable[[Any], int], str]] = [
        (lambda p: attach_initializers(p, detached), "attached {n} large weights as initializers"),
        (fold_reshapes, "folded {n} weight reshapes"),
        (fold_transposes, "folded {n} weight transposes"),
        (fold_conv_scale, "folded {n} per-channel scales into convolutions"),
        (fix_grouped_convs, "set group on {n} grouped convolutions"),
        (rewrite_erfc, "rewrote {n} Erfc ops as 1 - Erf"),
        (fuse_hard_sigmoid, "fused {n} legacy hard sigmoids into HardSigmoid"),
    ]
    fixes = [message.format(n=n) for fn, message in passes if (n := fn(proto))]
    rename_boundary(proto, inputs, outputs)
    name_dynamic_dims(proto)
    return fixes


def attach_initializers(proto: Any, detached: dict[str, Any]) -> int:
    """Graph inputs standing for large weights become initializers holding the variables' values."""
    numpy_helper = require("onnx.numpy_helper")
    graph = proto.graph
    keep = [i for i in graph.input if i.name not in detached]
    found = [i.name for i in graph.input if i.name in detached]
    del graph.input[:]
    graph.input.extend(keep)
    for name in found:
        array = np.asarray(detached.pop(name).numpy())
        graph.initializer.append(numpy_helper.from_array(array, name))
        del array
    return len(found)


def _consumers(graph: Any) -> dict[str, int]:
    count: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            count[name] = count.get(name, 0) + 1
    for out in graph.output:
        count[out.name] = count.get(out.name, 0) + 1
    return count


def fold_reshapes(proto: Any) -> int:
    """A Reshape of a weight by a constant shape becomes the reshaped weight. tf2onnx writes a
    depthwise kernel as weight -> Reshape -> Transpose, computed at every run and counted as a
    transpose of activations (EfficientNetB0: 6 left channels-first); folded here, the transpose after
    it folds too."""
    numpy_helper = require("onnx.numpy_helper")
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    uses = _consumers(graph)
    folded = 0
    for node in list(graph.node):
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[0] not in inits or node.input[1] not in inits:
            continue
        if uses.get(node.input[0]) != 1 or any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        array = numpy_helper.to_array(inits[node.input[0]])
        shape = [int(d) for d in numpy_helper.to_array(inits[node.input[1]]).reshape(-1)]
        shape = [array.shape[i] if d == 0 and i < array.ndim else d for i, d in enumerate(shape)]
        try:
            array = np.ascontiguousarray(array.reshape(shape))
        except ValueError:
            continue
        graph.initializer.remove(inits.pop(node.input[0]))
        uses[node.input[1]] -= 1
        if uses[node.input[1]] == 0:
            graph.initializer.remove(inits.pop(node.input[1]))
        _node_as_initializer(graph, inits, node, array, numpy_helper)
        folded += 1
    return folded


def _node_as_initializer(graph: Any, inits: dict, node: Any, array: np.ndarray, numpy_helper: Any) -> None:
    """`node`, whose one output is a constant `array`, replaced by an initializer of that name."""
    new = numpy_helper.from_array(array, node.output[0])
    graph.initializer.append(new)
    inits[new.name] = new
    graph.node.remove(node)


def fold_transposes(proto: Any) -> int:
    numpy_helper = require("onnx.numpy_helper")
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    uses = _consumers(graph)
    folded = 0
    for node in list(graph.node):
        if node.op_type != "Transpose" or node.input[0] not in inits or uses.get(node.input[0]) != 1:
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        src = inits.pop(node.input[0])
        array = numpy_helper.to_array(src)
        array = np.ascontiguousarray(np.transpose(array, perm) if perm else array.T)
        graph.initializer.remove(src)
        _node_as_initializer(graph, inits, node, array, numpy_helper)
        folded += 1
    return folded


def fold_conv_scale(proto: Any) -> int:
    numpy_helper = require("onnx.numpy_helper")
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    uses = _consumers(graph)
    producer = {out: node for node in graph.node for out in node.output}
    folded = 0
    for mul in list(graph.node):
        if mul.op_type != "Mul" or len(mul.input) != 2:
            continue
        const_in = next((i for i in mul.input if i in inits), None)
        other = next((i for i in mul.input if i != const_in), None)
        conv = producer.get(other) if other else None
        if const_in is None or conv is None or conv.op_type != "Conv" or uses.get(other) != 1:
            continue
        if len(conv.input) < 2 or conv.input[1] not in inits or uses.get(conv.input[1]) != 1:
            continue
        if len(conv.input) > 2 and (conv.input[2] not in inits or uses.get(conv.input[2]) != 1):
            continue
        scale = numpy_helper.to_array(inits[const_in])
        weight = numpy_helper.to_array(inits[conv.input[1]])
        channels, rank = weight.shape[0], weight.ndim  # the Conv output has the kernel's rank
        if scale.ndim > rank:
            continue
        aligned = (1,) * (rank - scale.ndim) + tuple(scale.shape)
        if aligned[0] != 1 or any(d != 1 for d in aligned[2:]) or aligned[1] not in (1, channels):
            continue  # not a per-output-channel constant in NCHW layout
        c = np.broadcast_to(scale.reshape(-1), (channels,)).astype(weight.dtype)
        _replace_init(graph, inits, conv.input[1], weight * c.reshape((-1,) + (1,) * (weight.ndim - 1)), numpy_helper)
        if len(conv.input) > 2:
            bias = numpy_helper.to_array(inits[conv.input[2]])
            _replace_init(graph, inits, conv.input[2], bias * c, numpy_helper)
        conv.output[0] = mul.output[0]
        graph.node.remove(mul)
        if uses.get(const_in) == 1:
            graph.initializer.remove(inits.pop(const_in))
        folded += 1
    return folded


def _replace_init(graph: Any, inits: dict, name: str, array: np.ndarray, numpy_helper: Any) -> None:
    new = numpy_helper.from_array(np.ascontiguousarray(array), name)
    graph.initializer.remove(inits[name])
    graph.initializer.append(new)
    inits[name] = new


def _input_channels(proto: Any) -> dict[str, int]:
    """Channel count (dim 1) of every tensor, from shape inference on a copy without weight data."""
    onnx = require("onnx")
    light = onnx.ModelProto()  # built field by field: never copy the weights
    light.ir_version = proto.ir_version
    light.opset_import.extend(proto.opset_import)
    graph = light.graph
    graph.node.extend(proto.graph.node)
    graph.input.extend(proto.graph.input)
    graph.output.extend(proto.graph.output)
    for t in proto.graph.initializer:
        graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    inferred = onnx.shape_inference.infer_shapes(light)
    channels = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input):
        dims = vi.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[1].HasField("dim_value"):
            channels[vi.name] = dims[1].dim_value
    return channels


def fix_grouped_convs(proto: Any) -> int:
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in inits]
    if not convs:
        return 0
    channels = _input_channels(proto)
    fixed = 0
    for node in convs:
        weight_in = inits[node.input[1]].dims[1]
        c_in = channels.get(node.input[0])
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if c_in is None or weight_in == 0 or c_in == weight_in * group or c_in % weight_in:
            continue
        for a in list(node.attribute):
            if a.name == "group":
                node.attribute.remove(a)
        onnx = require("onnx")
        node.attribute.append(onnx.helper.make_attribute("group", c_in // weight_in))
        fixed += 1
    return fixed


def rewrite_erfc(proto: Any) -> int:
    onnx = require("onnx")
    graph = proto.graph
    nodes = [n for n in graph.node if n.op_type == "Erfc" and n.domain in ("", "ai.onnx")]
    if not nodes:
        return 0
    one = "modeltool_one_f32"
    graph.initializer.append(onnx.numpy_helper.from_array(np.array(1.0, np.float32), one))
    for node in nodes:
        erf_out = f"{node.output[0]}__erf"
        index = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(
            index, onnx.helper.make_node("Sub", [one, erf_out], [node.output[0]], name=f"{node.name}/sub")
        )
        graph.node.insert(index, onnx.helper.make_node("Erf", [node.input[0]], [erf_out], name=f"{node.name}/erf"))
    return len(nodes)


def _scalar(inits: dict, name: str) -> float | None:
    numpy_helper = require("onnx.numpy_helper")
    t = inits.get(name)
    if t is None:
        return None
    value = numpy_helper.to_array(t)
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def fuse_hard_sigmoid(proto: Any) -> int:
    """`clip(x * a + b, 0, 1)` (Mul, Add, then Min/Max in either order, or Clip) -> HardSigmoid."""
    helper = require("onnx.helper")
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    uses = _consumers(graph)
    producer = {o: n for n in graph.node for o in n.output}
    fused = 0
    for last in list(graph.node):
        chain = _clip_chain(last, producer, inits, uses)
        if chain is None:
            continue
        mul, add, clips = chain
        alpha = _scalar(inits, next(i for i in mul.input if i in inits))
        beta = _scalar(inits, next(i for i in add.input if i in inits))
        x = next(i for i in mul.input if i not in inits)
        node = helper.make_node("HardSigmoid", [x], [last.output[0]], name=f"{mul.name}/HardSigmoid",
                                alpha=alpha, beta=beta)  # fmt: skip
        index = list(graph.node).index(mul)
        for old in (mul, add, *clips):
            graph.node.remove(old)
        graph.node.insert(index, node)
        fused += 1
    return fused


def _clip_chain(last: Any, producer: dict, inits: dict, uses: dict) -> tuple[Any, Any, list] | None:
    """(Mul, Add, [clip nodes]) when `last` ends a `clip(x * a + b, 0, 1)` with scalar constants and
    no other consumer in between."""
    def const_input(node: Any) -> float | None:
        names = [i for i in node.input if i in inits]
        return _scalar(inits, names[0]) if len(names) == 1 else None

    def single(name: str) -> Any:
        node = producer.get(name)
        return node if node is not None and uses.get(name) == 1 else None

    clips: list = []
    bounds: set[float] = set()
    node = last
    if node.op_type == "Clip" and len(node.input) == 3:
        lo, hi = _scalar(inits, node.input[1]), _scalar(inits, node.input[2])
        if (lo, hi) != (0.0, 1.0):
            return None
        clips, bounds = [node], {0.0, 1.0}
        node = single(node.input[0])
    else:
        while node is not None and node.op_type in ("Min", "Max") and len(clips) < 2:
            bound = const_input(node)
            if bound not in ((1.0,) if node.op_type == "Min" else (0.0,)):
                return None
            clips.append(node)
            bounds.add(bound)
            node = single(next(i for i in node.input if i not in inits))
    if bounds != {0.0, 1.0} or node is None or node.op_type != "Add" or const_input(node) is None:
        return None
    add = node
    mul = single(next(i for i in add.input if i not in inits))
    if mul is None or mul.op_type != "Mul" or const_input(mul) is None:
        return None
    return mul, add, clips


def rename_boundary(proto: Any, inputs: dict[str, str], outputs: dict[str, str]) -> None:
    """Graph input/output names -> the source model's names, everywhere they are used."""
    graph = proto.graph
    mapping = {}
    for vi in graph.input:
        if vi.name in inputs:
            mapping[vi.name] = inputs[vi.name]
    for vi in graph.output:
        if vi.name in outputs:
            mapping[vi.name] = outputs[vi.name]
    mapping = {k: v for k, v in mapping.items() if k != v}
    if not mapping:
        return
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        vi.name = mapping.get(vi.name, vi.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]


def name_dynamic_dims(proto: Any) -> None:
    """Unnamed or `unk__N` dynamic dims: `batch` for dim 0, `sequence` for dim 1 of the token
    inputs of a model library's conventions (`token_ids`, `padding_mask`, ...: one length shared by
    all of them), `<tensor>_dim<i>` for the others."""
    from modeltool.keras.hub import sequence_inputs

    sequences = {vi.name for vi in proto.graph.input if vi.name in sequence_inputs()}
    for vi in list(proto.graph.input) + list(proto.graph.output):
        for i, dim in enumerate(vi.type.tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            if not dim.dim_param or dim.dim_param.startswith("unk__"):
                dim.dim_param = dynamic_dim_name(vi.name, i, sequences)


def dynamic_dim_name(tensor: str, index: int, sequences: set[str]) -> str:
    """`batch` for dim 0; for dim 1 of an input in `sequences`, `sequence` (or `encoder_sequence`/
    `decoder_sequence` for a seq2seq model's two lengths); else `<tensor>_dim<index>`."""
    if index == 0:
        return "batch"
    if index == 1 and tensor in sequences:
        side = tensor.split("_", 1)[0]
        return f"{side}_sequence" if side in ("encoder", "decoder") else "sequence"
    return f"{tensor}_dim{index}"


def unknown_ops(model: Any) -> list[str]:
    """Ops no ONNX schema defines (tf2onnx leaves TF ops it cannot convert in the graph)."""
    onnx = require("onnx")
    bad = set()
    for node in model.graph.node:
        if node.domain not in KNOWN_DOMAINS:
            bad.add(f"{node.domain}.{node.op_type}")
        elif node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type):
            bad.add(node.op_type)
    return sorted(bad)
