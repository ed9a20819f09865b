"""Normalization layers: BatchNormalization (inference: moving statistics), LayerNormalization,
GroupNormalization and UnitNormalization.

BatchNormalization over the axis a value holds second is ONNX's BatchNormalization, which a later
pass folds into the convolution before it (`passes.fold_batchnorm`); over any other axis it is one
multiply and one add with the per-channel constants. LayerNormalization over the trailing held axes
is ONNX's LayerNormalization (opset 17+); elsewhere it is written out (mean, variance, rsqrt).
GroupNormalization is InstanceNormalization over the channels grouped, then the per-channel affine.
"""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context, Layer
from modeltool.exporters.direct.layout import broadcast_shape, to_perm


def _axes(value: object, rank: int) -> list[int]:
    axes = value if isinstance(value, (list, tuple)) else [value]
    return sorted(int(a) % rank for a in axes)  # type: ignore[arg-type]


def affine(layer: Layer, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(gamma, beta) with their defaults when `scale`/`center` is off."""
    cfg = layer.config
    gamma = layer.array("gamma") if cfg.get("scale", True) and layer.has("gamma") else np.ones(size, np.float32)
    beta = layer.array("beta") if cfg.get("center", True) and layer.has("beta") else np.zeros(size, np.float32)
    return gamma.astype(np.float32).reshape(-1), beta.astype(np.float32).reshape(-1)


def batch_normalization(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    axes = _axes(layer.config.get("axis", -1), x.rank)
    eps = float(layer.config.get("epsilon", 1e-3))
    mean = layer.array("moving_mean").astype(np.float32)
    var = layer.array("moving_variance").astype(np.float32)
    gamma, beta = affine(layer, mean.size)
    if len(axes) == 1 and x.axis(axes[0]) == 1 and mean.ndim == 1:
        name = ctx.op("BatchNormalization", [x, ctx.const(gamma, "gamma"), ctx.const(beta, "beta"),
                                             ctx.const(mean.reshape(-1), "moving_mean"),
                                             ctx.const(var.reshape(-1), "moving_variance")], epsilon=eps)  # fmt: skip
        return [x.but(name=name)]
    sizes = [x.shape[a] for a in axes]
    shape = broadcast_shape(x, axes, sizes)
    scale = (gamma.reshape(mean.shape) / np.sqrt(var + np.float32(eps))).astype(np.float32)
    shift = (beta.reshape(mean.shape) - mean * scale).astype(np.float32)
    moved = _held(x, axes)
    scale, shift = np.transpose(scale, moved).reshape(shape), np.transpose(shift, moved).reshape(shape)
    name = ctx.op("Add", [ctx.op("Mul", [x, ctx.const(scale, "scale")]), ctx.const(shift, "shift")])
    return [x.but(name=name)]


def _held(x: Value, axes: list[int]) -> list[int]:
    """How to reorder per-axes statistics (stored in Keras's axis order) into the held order."""
    held = sorted(axes, key=x.axis)
    return [axes.index(a) for a in held]


def layer_normalization(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    cfg = layer.config
    axes = _axes(cfg.get("axis", -1), x.rank)
    eps = float(cfg.get("epsilon", 1e-3))
    sizes = [x.shape[a] for a in axes]
    if any(s is None for s in sizes):
        raise layer.refuse("normalized axes of unknown size")
    size = int(np.prod(sizes))
    gamma, beta = affine(layer, size)
    held = sorted(x.axis(a) for a in axes)
    trailing = held == list(range(x.rank - len(axes), x.rank))
    stats = np.asarray(gamma).reshape(sizes), np.asarray(beta).reshape(sizes)
    moved = _held(x, axes)
    gamma_held, beta_held = (np.transpose(s, moved) for s in stats)
    if cfg.get("rms_scaling"):
        return [_rms(ctx, x, held, eps, gamma_held, broadcast_shape(x, axes, sizes))]
    if trailing and ctx.opset >= 17:
        name = ctx.op("LayerNormalization", [x, ctx.const(gamma_held, "gamma"), ctx.const(beta_held, "beta")],
                      axis=held[0], epsilon=eps)  # fmt: skip
        return [x.but(name=name)]
    shape = broadcast_shape(x, axes, sizes)
    mean = ctx.reduce("ReduceMean", x.name, held, True)
    centered = ctx.op("Sub", [x, mean])
    var = ctx.reduce("ReduceMean", ctx.op("Mul", [centered, centered]), held, True)
    inv = ctx.op("Reciprocal", [ctx.op("Sqrt", [ctx.op("Add", [var, ctx.const(np.float32(eps))])])])
    name = ctx.op("Mul", [centered, inv])
    name = ctx.op("Mul", [name, ctx.const(gamma_held.reshape(shape), "gamma")])
    name = ctx.op("Add", [name, ctx.const(beta_held.reshape(shape), "beta")])
    return [x.but(name=name)]


def _rms(ctx: Context, x: Value, held: list[int], eps: float, gamma: np.ndarray, shape: list[int]) -> Value:
    """Keras 3's (deprecated) rms_scaling: x * rsqrt(variance(x) + eps) * gamma, x itself not
    centered and no beta (Keras scales by the variance, as its own warning says)."""
    centered = ctx.op("Sub", [x, ctx.reduce("ReduceMean", x.name, held, True)])
    square = ctx.reduce("ReduceMean", ctx.op("Mul", [centered, centered]), held, True)
    inv = ctx.op("Reciprocal", [ctx.op("Sqrt", [ctx.op("Add", [square, ctx.const(np.float32(eps))])])])
    return x.but(name=ctx.op("Mul", [ctx.op("Mul", [x, inv]), ctx.const(gamma.reshape(shape), "gamma")]))


def group_normalization(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Statistics per (sample, group) over the group's channels and every spatial position."""
    x = inputs[0]
    cfg = layer.config
    axis = int(cfg.get("axis", -1)) % x.rank
    groups = int(cfg.get("groups", 32))
    channels = x.shape[axis]
    if channels is None or x.rank < 3 or channels % groups:
        raise layer.refuse(f"{channels} channels in {groups} groups")
    eps = float(cfg.get("epsilon", 1e-3))
    order = (0, axis, *[a for a in range(1, x.rank) if a != axis])
    x = to_perm(ctx, x, order if order != tuple(range(x.rank)) else None)
    grouped = ctx.reshape(x, [0, groups, -1])
    ones, zeros = np.ones(groups, np.float32), np.zeros(groups, np.float32)
    normed = ctx.op("InstanceNormalization", [grouped, ctx.const(ones), ctx.const(zeros)], epsilon=eps)
    back = ctx.op("Reshape", [normed, ctx.op("Shape", [x])])
    gamma, beta = affine(layer, channels)
    shape = broadcast_shape(x, [axis], [channels])
    name = ctx.op("Add", [ctx.op("Mul", [back, ctx.const(gamma.reshape(shape), "gamma")]),
                          ctx.const(beta.reshape(shape), "beta")])  # fmt: skip
    return [x.but(name=name)]


def unit_normalization(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """x * min(rsqrt(sum(x^2)), 1 / 1e-12) over `axis` (Keras's normalize with epsilon 1e-12)."""
    x = inputs[0]
    held = sorted(x.axis(a) for a in _axes(layer.config.get("axis", -1), x.rank))
    square = ctx.reduce("ReduceSum", ctx.op("Mul", [x, x]), held, True)
    inv = ctx.op("Min", [ctx.op("Reciprocal", [ctx.op("Sqrt", [square])]), ctx.const(np.float32(1e12))])
    return [x.but(name=ctx.op("Mul", [x, inv]))]
