"""Normalization layers as TFLite ops.

BatchNormalization (inference: moving statistics) is one MUL and one ADD with per-channel constants,
which `passes.fold_batchnorm` folds into the convolution or fully connected op before it, as the
TFLite converter does. LayerNormalization over the last axis is written out (MEAN, SQUARED_DIFFERENCE,
RSQRT): TFLite has no builtin for it. Normalization is (x - mean) / max(sqrt(variance), 1e-7).
"""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.direct.normalization import affine
from modeltool.exporters.litert.context import LiteContext, options
from modeltool.exporters.litert.layout import channels_axis_aware

#: keras.layers.Normalization's floor on the standard deviation
EPSILON = 1e-7


def _last_axis(layer: Layer, x: Value) -> None:
    axis = layer.config.get("axis", -1)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    if [int(a) % x.rank for a in axes] != [x.rank - 1]:
        raise layer.refuse(f"normalizing over axis {axis} (the direct TFLite route lowers the last axis)")


@channels_axis_aware
def batch_normalization(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    _last_axis(layer, x)
    eps = float(layer.config.get("epsilon", 1e-3))
    mean = layer.array("moving_mean").astype(np.float32).reshape(-1)
    var = layer.array("moving_variance").astype(np.float32).reshape(-1)
    gamma, beta = affine(layer, mean.size)
    scale = (gamma / np.sqrt(var + np.float32(eps))).astype(np.float32)
    shift = (beta - mean * scale).astype(np.float32)
    return [ctx.binary("ADD", ctx.binary("MUL", x, ctx.const(scale, "scale")), ctx.const(shift, "shift"))]


def layer_normalization(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """(x - mean) * rsqrt(variance + epsilon) * gamma + beta over the last axis."""
    x = inputs[0]
    _last_axis(layer, x)
    if layer.config.get("rms_scaling"):
        raise layer.refuse("rms_scaling=True is not lowered")
    size = x.shape[-1]
    if size is None:
        raise layer.refuse("the normalized axis has an unknown size")
    eps = float(layer.config.get("epsilon", 1e-3))
    gamma, beta = affine(layer, size)
    axis, stats = ctx.ints([x.rank - 1]), (*x.shape[:-1], 1)
    mean = ctx.op("MEAN", [x, axis], stats, opts=options("ReducerOptions", keepDims=True))
    centered = ctx.binary("SUB", x, mean)
    variance = ctx.op("MEAN", [ctx.binary("MUL", centered, centered), axis], stats,
                      opts=options("ReducerOptions", keepDims=True))  # fmt: skip
    inv = ctx.unary("RSQRT", ctx.binary("ADD", variance, ctx.scalar(eps)))
    y = ctx.binary("MUL", ctx.binary("MUL", centered, inv, x.shape), ctx.const(gamma, "gamma"))
    return [ctx.binary("ADD", y, ctx.const(beta, "beta"))]


def normalization(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    if layer.config.get("invert"):
        raise layer.refuse("invert=True is not lowered")
    if layer.has("mean"):
        mean, variance = layer.array("mean"), layer.array("variance")
    elif layer.config.get("mean") is not None:
        mean = np.asarray(layer.config["mean"], np.float32)
        variance = np.asarray(layer.config.get("variance", 1.0), np.float32)
    else:
        raise layer.refuse("neither adapted state nor mean/variance in the config")
    if mean.size != 1:
        _last_axis(layer, x)
        mean, variance = mean.reshape(-1), variance.reshape(-1)
    else:
        mean, variance = mean.reshape(()), variance.reshape(())
    inv = (1.0 / np.maximum(np.sqrt(variance.astype(np.float32)), np.float32(EPSILON))).astype(np.float32)
    centered = ctx.binary("SUB", x, ctx.const(mean.astype(np.float32), "mean"))
    return [ctx.binary("MUL", centered, ctx.const(inv, "inv_std"))]


def unit_normalization(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """x * rsqrt(max(sum(x^2), 1e-12)) over the last axis (Keras's UnitNormalization)."""
    x = inputs[0]
    _last_axis(layer, x)
    return [l2_normalized(ctx, x, x.rank - 1)]


def l2_normalized(ctx: LiteContext, x: Value, axis: int) -> Value:
    """x / max(norm(x), 1e-12) over `axis` (keras.ops.normalize's floor on the norm)."""
    shape = tuple(1 if i == axis else d for i, d in enumerate(x.shape))
    squares = ctx.op("SUM", [ctx.binary("MUL", x, x), ctx.ints([axis])], shape,
                     opts=options("ReducerOptions", keepDims=True))  # fmt: skip
    return ctx.binary("MUL", x, ctx.unary("RSQRT", ctx.binary("MAXIMUM", squares, ctx.scalar(1e-24))), x.shape)


def group_normalization(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Statistics per (sample, group) over the group's channels and every position: the channels-last
    input seen as (batch, positions, groups, channels per group), normalized, seen back."""
    x = inputs[0]
    _last_axis(layer, x)
    groups = int(layer.config.get("groups", 32))
    channels = x.shape[-1]
    if channels is None or x.rank < 3 or channels % groups or any(d is None for d in x.shape[1:]):
        raise layer.refuse(f"{channels} channels in {groups} groups over positions of unknown number")
    positions = int(np.prod(x.shape[1:-1]))
    grouped = ctx.reshape(x, (x.shape[0], positions, groups, channels // groups))
    axes, stats = ctx.ints([1, 3]), (x.shape[0], 1, groups, 1)
    keep = options("ReducerOptions", keepDims=True)
    mean = ctx.op("MEAN", [grouped, axes], stats, opts=keep)
    centered = ctx.binary("SUB", grouped, mean)
    variance = ctx.op("MEAN", [ctx.binary("MUL", centered, centered), axes], stats, opts=keep)
    eps = float(layer.config.get("epsilon", 1e-3))
    normed = ctx.binary("MUL", centered, ctx.unary("RSQRT", ctx.binary("ADD", variance, ctx.scalar(eps))))
    gamma, beta = affine(layer, channels)
    y = ctx.binary("MUL", ctx.reshape(normed, x.shape), ctx.const(gamma, "gamma"))
    return [ctx.binary("ADD", y, ctx.const(beta, "beta"))]
