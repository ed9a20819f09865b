"""Folds on the written graph, each one rewrite in its own function, run in the order of `PASSES`.

- `fold_batchnorm`: a BatchNormalization reading only a convolution's output becomes part of that
  convolution's kernel and bias (what tf2onnx and every inference runtime do; the numbers change by
  rounding only);
- `fold_pad`: a zero Pad on the spatial axes before a convolution becomes the convolution's own
  `pads` (ZeroPadding2D + Conv2D(padding='valid'), as MobileNet and ResNet write a strided 'same');
- `merge_duplicates`: nodes computing the same op with the same attributes on the same inputs become
  one (NASNet applies `Activation('relu')` and the same pooling to one tensor in several branches;
  TensorFlow's graph optimizer merges them before tf2onnx sees them, and so does this pass).

Nothing here changes what the graph computes beyond float rounding; the verification checks it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from modeltool.exporters.direct.builder import GraphBuilder


def _attr(node: object, name: str, default: object = None) -> object:
    from modeltool.deps import require

    helper = require("onnx").helper
    for a in node.attribute:  # type: ignore[attr-defined]
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attr(node: object, name: str, value: object) -> None:
    from modeltool.deps import require

    helper = require("onnx").helper
    for a in list(node.attribute):  # type: ignore[attr-defined]
        if a.name == name:
            node.attribute.remove(a)  # type: ignore[attr-defined]
    node.attribute.append(helper.make_attribute(name, value))  # type: ignore[attr-defined]


def fold_batchnorm(builder: GraphBuilder, outputs: list[str]) -> int:
    """BatchNormalization(Conv(x, W, b)) -> Conv(x, W * s, (b - mean) * s + beta), s = gamma / sqrt(var + eps)."""
    uses = builder.consumers()
    folded = 0
    for bn in [n for n in builder.nodes if n.op_type == "BatchNormalization"]:
        conv = builder.producer.get(bn.input[0])
        if conv is None or conv.op_type not in ("Conv", "ConvTranspose") or uses.get(bn.input[0], 0) != 1:
            continue
        if bn.input[0] in outputs or any(i not in builder.arrays for i in list(conv.input[1:]) + list(bn.input[1:])):
            continue
        if uses.get(conv.input[1], 0) != 1 or (len(conv.input) > 2 and uses.get(conv.input[2], 0) != 1):
            continue
        gamma, beta, mean, var = (builder.arrays[i].astype(np.float64) for i in bn.input[1:5])
        eps = float(_attr(bn, "epsilon", 1e-5))  # type: ignore[arg-type]
        scale = gamma / np.sqrt(var + eps)
        weight = builder.arrays[conv.input[1]].astype(np.float64)
        if conv.op_type == "Conv":
            weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
        else:  # ConvTranspose: (in, out / group, *window)
            group = int(_attr(conv, "group", 1))  # type: ignore[arg-type]
            if group != 1:
                continue
            weight = weight * scale.reshape((1, -1) + (1,) * (weight.ndim - 2))
        bias = builder.arrays[conv.input[2]].astype(np.float64) if len(conv.input) > 2 else np.zeros_like(mean)
        builder.replace_initializer(conv.input[1], weight.astype(np.float32))
        new_bias = ((bias - mean) * scale + beta).astype(np.float32)
        if len(conv.input) > 2:
            builder.replace_initializer(conv.input[2], new_bias)
        else:
            conv.input.append(builder.const(new_bias, f"{conv.name}/bias"))
        _rename(builder, bn.input[0], bn.output[0], conv)
        builder.nodes.remove(bn)
        folded += 1
    return folded


def _rename(builder: GraphBuilder, old: str, new: str, node: object) -> None:
    """`node` writes `new` (the folded node's output) instead of `old`."""
    outs = node.output  # type: ignore[attr-defined]
    outs[list(outs).index(old)] = new
    builder.producer[new] = node
    builder.producer.pop(old, None)


def fold_pad(builder: GraphBuilder, outputs: list[str]) -> int:
    """Conv(Pad(x, spatial zeros)) -> Conv(x, pads += those zeros)."""
    uses = builder.consumers()
    folded = 0
    for conv in [n for n in builder.nodes if n.op_type == "Conv"]:
        pad = builder.producer.get(conv.input[0])
        if pad is None or pad.op_type != "Pad" or uses.get(conv.input[0], 0) != 1 or conv.input[0] in outputs:
            continue
        if _attr(pad, "mode", b"constant") not in (b"constant", "constant") or len(pad.input) > 2 and pad.input[2]:
            continue
        if _attr(conv, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or pad.input[1] not in builder.arrays:
            continue
        amounts = builder.arrays[pad.input[1]].astype(np.int64).tolist()
        rank = len(amounts) // 2
        begin, end = amounts[:rank], amounts[rank:]
        if begin[:2] != [0, 0] or end[:2] != [0, 0] or min(amounts) < 0:
            continue
        current = list(_attr(conv, "pads", [0] * (2 * (rank - 2))))  # type: ignore[arg-type]
        spatial = rank - 2
        merged = [current[i] + begin[2 + i] for i in range(spatial)] + [current[spatial + i] + end[2 + i]
                                                                        for i in range(spatial)]  # fmt: skip
        _set_attr(conv, "pads", merged)
        conv.input[0] = pad.input[0]
        folded += 1
    return folded


def merge_duplicates(builder: GraphBuilder, outputs: list[str]) -> int:
    """Later copies of a node (same domain, op, inputs and attributes) read the first one's outputs
    instead; a node writing a graph output is kept. Constants are shared by value when written, so
    equal inputs have equal names."""
    protected = set(outputs)
    first: dict[tuple, object] = {}
    rename: dict[str, str] = {}
    kept, merged = [], 0
    for node in builder.nodes:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        attributes = tuple(a.SerializeToString() for a in sorted(node.attribute, key=lambda a: a.name))
        key = (node.domain, node.op_type, tuple(node.input), attributes, len(node.output))
        original = first.get(key)
        if original is not None and not protected & set(node.output):
            for old, new in zip(node.output, original.output):  # type: ignore[attr-defined]
                rename[old] = new
                builder.producer.pop(old, None)
            merged += 1
            continue
        first.setdefault(key, node)
        kept.append(node)
    builder.nodes = kept
    return merged


PASSES: list[tuple[str, Callable[[GraphBuilder, list[str]], int]]] = [
    ("duplicate nodes merged", merge_duplicates),
    ("batch normalizations folded into convolutions", fold_batchnorm),
    ("zero paddings folded into convolutions", fold_pad),
]


def run_all(builder: GraphBuilder, outputs: list[str]) -> list[str]:
    """Every pass in order, then dead nodes dropped; returns one line per pass that changed something."""
    done = []
    for what, fn in PASSES:
        count = fn(builder, outputs)
        if count:
            done.append(f"{count} {what}")
    builder.prune(outputs)
    return done
