"""Spatial layers: ZeroPadding1D/2D/3D, Cropping1D/2D/3D, UpSampling1D/2D/3D and Resizing.

Each works on whichever axes the value holds the spatial dims in, so a channels-first feature map
stays channels-first. UpSampling repeats pixels (ONNX Resize, nearest, asymmetric coordinates:
`out[i] = in[floor(i / size)]`); bilinear upsampling and Resizing use half-pixel centres as
TensorFlow's and JAX's `image.resize` do without antialiasing; Resizing's nearest mode rounds half-pixel
coordinates up, as `tf.image.resize` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context, Layer
from modeltool.exporters.direct.layout import channels_first

INT64_MAX = np.iinfo(np.int64).max


def pad_pairs(value: Any, rank: int) -> list[tuple[int, int]]:
    """Keras's padding/cropping argument (int, (a, b) per axis, or one pair for 1-D) as pairs."""
    if isinstance(value, int):
        return [(value, value)] * rank
    items = list(value)
    if rank == 1 and len(items) == 2 and all(isinstance(v, int) for v in items):
        return [(int(items[0]), int(items[1]))]
    pairs = []
    for item in items:
        if isinstance(item, int):
            pairs.append((item, item))
        else:
            a, b = item
            pairs.append((int(a), int(b)))
    return pairs


def _spatial_axes(x: Value, layer: Layer) -> list[int]:
    """Physical positions of the spatial axes, in Keras order."""
    first = layer.config.get("data_format") == "channels_first"
    logical_axes = range(2, x.rank) if first else range(1, x.rank - 1)
    return [x.axis(a) for a in logical_axes]


def _held_for_windows(ctx: Context, layer: Layer, x: Value) -> Value:
    """Images and volumes are moved channels-first here already: the convolution or pooling that
    usually follows needs them so, and a Pad right before a Conv then folds into it."""
    if x.rank >= 4:
        return channels_first(ctx, x, layer.config.get("data_format") or "channels_last")
    return x


def zero_padding(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = _held_for_windows(ctx, layer, inputs[0])
    rank = x.rank - 2
    axes = _spatial_axes(x, layer)
    pairs = pad_pairs(layer.config.get("padding", 1), rank)
    begin, end = [0] * x.rank, [0] * x.rank
    for axis, (a, b) in zip(axes, pairs):
        begin[axis], end[axis] = a, b
    name = ctx.op("Pad", [x, ctx.ints(begin + end)], mode="constant")
    return [x.but(name=name, shape=_shape(layer, x))]


def cropping(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = _held_for_windows(ctx, layer, inputs[0])
    rank = x.rank - 2
    axes = _spatial_axes(x, layer)
    pairs = pad_pairs(layer.config.get("cropping", 0), rank)
    starts = [a for a, _ in pairs]
    ends = [-b if b else INT64_MAX for _, b in pairs]
    name = ctx.op("Slice", [x, ctx.ints(starts), ctx.ints(ends), ctx.ints(axes)])
    return [x.but(name=name, shape=_shape(layer, x))]


def _shape(layer: Layer, x: Value) -> tuple:
    if layer.out_shapes and layer.out_shapes[0] is not None:
        return tuple(layer.out_shapes[0])
    raise layer.refuse("output shape unknown")


def upsampling(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    x = inputs[0]
    rank = x.rank - 2
    if rank > 1:
        x = channels_first(ctx, x, cfg.get("data_format") or "channels_last")
    sizes = cfg.get("size", 2)
    sizes = [int(sizes)] * rank if isinstance(sizes, int) else [int(s) for s in sizes]
    axes = [x.axis(1)] if rank == 1 else list(range(2, x.rank))
    scales = [1.0] * x.rank
    for axis, s in zip(axes, sizes):
        scales[axis] = float(s)
    mode = str(cfg.get("interpolation", "nearest"))
    if mode == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    elif mode == "bilinear":
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    else:
        raise layer.refuse(f"interpolation={mode!r} is not written by the direct route")
    name = ctx.op("Resize", [x.name, "", ctx.const(np.asarray(scales, np.float32), "scales")], **attrs)
    return [x.but(name=name, shape=_shape(layer, x))]


def resizing(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Keras's Resizing to (height, width), without antialiasing."""
    cfg = layer.config
    if cfg.get("crop_to_aspect_ratio") or cfg.get("pad_to_aspect_ratio"):
        raise layer.refuse("crop_to_aspect_ratio/pad_to_aspect_ratio are not written by the direct route")
    if cfg.get("antialias"):
        raise layer.refuse("antialias=True is not written by the direct route")
    x = inputs[0]
    if x.rank != 4:
        raise layer.refuse(f"rank-{x.rank} input (batched images only)")
    x = channels_first(ctx, x, cfg.get("data_format") or "channels_last")
    mode = str(cfg.get("interpolation", "bilinear"))
    if mode == "bilinear":
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    elif mode == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"}
    else:
        raise layer.refuse(f"interpolation={mode!r} is not written by the direct route")
    target = [int(cfg["height"]), int(cfg["width"])]
    batch, channels = x.physical_shape[:2]
    if batch is not None and channels is not None:
        sizes = ctx.ints([batch, channels, *target])
    else:  # onnxruntime does not take Resize's `axes` with `sizes`: the full shape, batch read at run time
        head = ctx.op("Slice", [ctx.op("Shape", [x]), ctx.ints([0]), ctx.ints([2])])
        sizes = ctx.op("Concat", [head, ctx.ints(target)], axis=0)
    name = ctx.op("Resize", [x.name, "", "", sizes], **attrs)
    return [x.but(name=name, shape=_shape(layer, x))]
