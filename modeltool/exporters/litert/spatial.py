"""Spatial layers as TFLite ops: ZeroPadding (PAD), Cropping (SLICE) and UpSampling (nearest:
RESIZE_NEAREST_NEIGHBOR, `out[i] = in[floor(i / size)]`; bilinear: RESIZE_BILINEAR with
half-pixel centres, as Keras's `image.resize` without antialiasing), channels-last."""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.direct.spatial import pad_pairs
from modeltool.exporters.litert.context import LiteContext, options
from modeltool.exporters.litert.core import out_shape
from modeltool.exporters.litert.layout import channels_first_aware


@channels_first_aware
def zero_padding(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    pairs = [(0, 0), *pad_pairs(layer.config.get("padding", 1), x.rank - 2), (0, 0)]
    return [ctx.op("PAD", [x, ctx.const(np.asarray(pairs, np.int32), "paddings")], out_shape(layer), x.dtype)]


@channels_first_aware
def cropping(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    pairs = pad_pairs(layer.config.get("cropping", 0), x.rank - 2)
    shape = out_shape(layer)
    if any(d is None for d in shape[1:-1]):
        raise layer.refuse("cropping dims of unknown size")
    begin = [0, *[a for a, _ in pairs], 0]
    size = [-1, *[int(d) for d in shape[1:-1]], -1]
    return [ctx.op("SLICE", [x, ctx.ints(begin), ctx.ints(size)], shape, x.dtype)]


@channels_first_aware
def upsampling(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    cfg = layer.config
    shape = out_shape(layer)
    mode = str(cfg.get("interpolation", "nearest"))
    if x.rank == 3:  # steps repeated: (batch, steps, 1, channels) tiled along the new axis
        n = int(cfg.get("size", 2))
        if x.shape[1] is None:
            raise layer.refuse("steps of unknown number")
        tiled = ctx.op("TILE", [ctx.reshape(x, (x.shape[0], x.shape[1], 1, x.shape[2])), ctx.ints([1, 1, n, 1])],
                       (x.shape[0], x.shape[1], n, x.shape[2]), x.dtype)  # fmt: skip
        return [ctx.reshape(tiled, shape)]
    if any(d is None for d in shape[1:3]):
        raise layer.refuse("output dims of unknown size")
    size = ctx.ints([int(shape[1]), int(shape[2])])
    if mode == "nearest":
        opts = options("ResizeNearestNeighborOptions", alignCorners=False, halfPixelCenters=False)
        return [ctx.op("RESIZE_NEAREST_NEIGHBOR", [x, size], shape, x.dtype, opts)]
    if mode == "bilinear":
        opts = options("ResizeBilinearOptions", alignCorners=False, halfPixelCenters=True)
        return [ctx.op("RESIZE_BILINEAR", [x, size], shape, x.dtype, opts, version=3)]
    raise layer.refuse(f"interpolation={mode!r} is not lowered")


@channels_first_aware
def resizing(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Keras's Resizing to (height, width), without antialiasing: half-pixel centres, as
    `image.resize` computes them."""
    cfg = layer.config
    if cfg.get("crop_to_aspect_ratio") or cfg.get("pad_to_aspect_ratio") or cfg.get("antialias"):
        raise layer.refuse("crop_to_aspect_ratio, pad_to_aspect_ratio and antialias are not lowered")
    x = inputs[0]
    if x.rank != 4:
        raise layer.refuse(f"rank-{x.rank} input (batched images only)")
    size = ctx.ints([int(cfg["height"]), int(cfg["width"])])
    shape = out_shape(layer)
    mode = str(cfg.get("interpolation", "bilinear"))
    if mode == "bilinear":
        opts = options("ResizeBilinearOptions", alignCorners=False, halfPixelCenters=True)
        return [ctx.op("RESIZE_BILINEAR", [x, size], shape, x.dtype, opts, version=3)]
    if mode == "nearest":
        opts = options("ResizeNearestNeighborOptions", alignCorners=False, halfPixelCenters=True)
        return [ctx.op("RESIZE_NEAREST_NEIGHBOR", [x, size], shape, x.dtype, opts, version=3)]
    raise layer.refuse(f"interpolation={mode!r} is not lowered")
