"""Pooling: Max/AveragePooling1D/2D/3D and the global poolings.

Windows and 'same' padding as for convolutions (TensorFlow's rule); average pooling over a 'same'
window divides by the cells inside the input only (`count_include_pad=0`), as every Keras backend
does. Global poolings reduce the spatial axes wherever the value holds them, so a channels-first
feature map needs no transpose before the classifier head. GlobalAveragePooling1D averages only the
unmasked steps when a mask reaches it (Embedding(mask_zero=True)).
"""

from __future__ import annotations

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context, Layer, onnx_dtype
from modeltool.exporters.direct.conv import tuple_arg, window_attrs
from modeltool.exporters.direct.layout import channels_first, logical


def pooling(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    x = inputs[0]
    rank = x.rank - 2
    x = channels_first(ctx, x, cfg.get("data_format") or "channels_last")
    size = tuple_arg(cfg.get("pool_size"), rank, 2)
    strides = tuple_arg(cfg.get("strides") or size, rank)
    attrs = window_attrs(layer, x.physical_shape[2:], size, strides, (1,) * rank,
                         str(cfg.get("padding", "valid")).lower())  # fmt: skip
    if layer.cls.startswith("Max"):
        name = ctx.op("MaxPool", [x], **attrs)
    else:
        name = ctx.op("AveragePool", [x], count_include_pad=0, **attrs)
    shape = layer.out_shapes[0] if layer.out_shapes else None
    if shape is None:
        raise layer.refuse("output shape unknown")
    return [Value(name, tuple(shape), x.dtype, x.perm)]


def global_pooling(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    x = inputs[0]
    first = cfg.get("data_format") == "channels_first"
    spatial = list(range(2, x.rank)) if first else list(range(1, x.rank - 1))
    keep = bool(cfg.get("keepdims", False))
    average = "Average" in layer.cls
    if average and x.mask is not None:
        return [_masked_average(ctx, x, spatial, keep, first)]
    op = "ReduceMean" if average else "ReduceMax"
    axes = sorted(x.axis(a) for a in spatial)
    name = ctx.reduce(op, x.name, axes, keep)
    if keep:
        shape = tuple(1 if i in spatial else d for i, d in enumerate(x.shape))
        return [Value(name, shape, x.dtype, x.perm)]
    left = [p for p in (x.perm or range(x.rank)) if p not in spatial]  # logical axes, in held order
    shape = tuple(x.shape[a] for a in sorted(left))
    perm = None if left == sorted(left) else tuple(sorted(left).index(a) for a in left)
    return [Value(name, shape, x.dtype, perm)]


def _masked_average(ctx: Context, x: Value, spatial: list[int], keep: bool, first: bool) -> Value:
    """Keras: sum(x * mask) / sum(mask) over the steps (mask broadcast over the features)."""
    x = logical(ctx, x)
    mask = ctx.op("Cast", [x.mask], to=onnx_dtype("float32"))
    mask = ctx.unsqueeze(mask, [1 if first else 2])
    total = ctx.reduce("ReduceSum", ctx.op("Mul", [x, mask]), spatial, keep)
    count = ctx.reduce("ReduceSum", mask, spatial, keep)
    shape = tuple(1 if i in spatial else d for i, d in enumerate(x.shape)) if keep else tuple(
        d for i, d in enumerate(x.shape) if i not in spatial)  # fmt: skip
    return Value(ctx.op("Div", [total, count]), shape, x.dtype)
