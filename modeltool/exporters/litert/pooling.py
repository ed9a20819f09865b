"""Pooling as TFLite ops: MAX_POOL_2D / AVERAGE_POOL_2D (1-D windows as 2-D ones of height 1),
global poolings as MEAN / REDUCE_MAX over the spatial axes.

TFLite's SAME average pooling divides by the cells inside the input, as every Keras backend does.
"""

from __future__ import annotations

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.direct.conv import tuple_arg
from modeltool.exporters.litert.context import LiteContext, options
from modeltool.exporters.litert.conv import PADDING
from modeltool.exporters.litert.core import out_shape
from modeltool.exporters.litert.layout import channels_first_aware


@channels_first_aware
def pooling(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    x = inputs[0]
    rank = x.rank - 2
    padding = str(cfg.get("padding", "valid")).lower()
    if padding not in PADDING:
        raise layer.refuse(f"padding={padding!r} is not lowered")
    size = tuple_arg(cfg.get("pool_size"), rank, 2)
    strides = tuple_arg(cfg.get("strides") or size, rank)
    shape = out_shape(layer)
    if rank == 1:
        x = ctx.reshape(x, (x.shape[0], 1, x.shape[1], x.shape[2]))
        size, strides = (1, size[0]), (1, strides[0])
        spatial = (shape[0], 1, shape[1], shape[2])
    else:
        spatial = shape
    opts = options("Pool2DOptions", padding=PADDING[padding], strideH=strides[0], strideW=strides[1],
                   filterHeight=size[0], filterWidth=size[1])  # fmt: skip
    y = ctx.op("MAX_POOL_2D" if layer.cls.startswith("Max") else "AVERAGE_POOL_2D", [x], spatial, opts=opts)
    return [ctx.reshape(y, shape) if rank == 1 else y]


@channels_first_aware
def global_pooling(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    x = inputs[0]
    axes = list(range(1, x.rank - 1))
    keep = bool(cfg.get("keepdims", False))
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep else (x.shape[0], x.shape[-1])
    if x.mask is not None and "Average" in layer.cls:  # Keras: sum(x * mask) / sum(mask) over the steps
        mask = ctx.reshape(ctx.op("CAST", [ctx.by_name[x.mask]], x.shape[:-1]), (*x.shape[:-1], 1))
        reduce = options("ReducerOptions", keepDims=keep)
        total = ctx.op("SUM", [ctx.binary("MUL", x, mask, x.shape), ctx.ints(axes)], shape, opts=reduce)
        count = ctx.op("SUM", [mask, ctx.ints(axes)], (*shape[:-1], 1), opts=reduce)
        return [ctx.binary("DIV", total, count, shape)]
    op = "MEAN" if "Average" in layer.cls else "REDUCE_MAX"
    return [ctx.op(op, [x, ctx.ints(axes)], shape, x.dtype, options("ReducerOptions", keepDims=keep))]
