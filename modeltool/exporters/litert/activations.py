"""Activation functions and activation layers as TFLite builtin ops.

The same definitions as the direct ONNX route (`exporters/direct/activations.py`, which also parses
the config values): `gelu` exact unless asked approximate, Keras 1/2's `hard_sigmoid` is
`clip(0.2x + 0.5, 0, 1)` and Keras 3's `relu6(x + 3) / 6`, softplus written in its stable form
`relu(x) + log(1 + exp(-|x|))`. RELU and RELU6 after a convolution, a fully connected op or an
elementwise op are fused into it later (`passes.fuse_activations`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from modeltool.exporters.direct.activations import LEGACY_HARD_SIGMOID, SELU_ALPHA, SELU_SCALE, activation_name
from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.litert.context import LiteContext, options


def _softplus(ctx: LiteContext, x: Value) -> Value:
    tail = ctx.unary("LOG", ctx.binary("ADD", ctx.unary("EXP", ctx.unary("NEG", ctx.unary("ABS", x))),
                                       ctx.scalar(1.0)))  # fmt: skip
    return ctx.binary("ADD", ctx.unary("RELU", x), tail)


def _clip(ctx: LiteContext, x: Value, low: float, high: float) -> Value:
    return ctx.binary("MAXIMUM", ctx.binary("MINIMUM", x, ctx.scalar(high)), ctx.scalar(low))


def _selu(ctx: LiteContext, x: Value) -> Value:
    negative = ctx.binary("MUL", ctx.unary("ELU", ctx.binary("MINIMUM", x, ctx.scalar(0.0))), ctx.scalar(SELU_ALPHA))
    return ctx.binary("MUL", ctx.binary("ADD", ctx.unary("RELU", x), negative), ctx.scalar(SELU_SCALE))


ELEMENTWISE: dict[str, Callable[[LiteContext, Value], Value]] = {
    "linear": lambda ctx, x: x,
    "relu": lambda ctx, x: ctx.unary("RELU", x),
    "relu6": lambda ctx, x: ctx.unary("RELU6", x),
    "sigmoid": lambda ctx, x: ctx.unary("LOGISTIC", x),
    "tanh": lambda ctx, x: ctx.unary("TANH", x),
    "elu": lambda ctx, x: ctx.unary("ELU", x),
    "selu": _selu,
    "exponential": lambda ctx, x: ctx.unary("EXP", x),
    "softplus": _softplus,
    "softsign": lambda ctx, x: ctx.binary("DIV", x, ctx.binary("ADD", ctx.unary("ABS", x), ctx.scalar(1.0))),
    "silu": lambda ctx, x: ctx.binary("MUL", x, ctx.unary("LOGISTIC", x)),
    "gelu": lambda ctx, x: ctx.unary("GELU", x, options("GeluOptions", approximate=False)),
    "gelu_approximate": lambda ctx, x: ctx.unary("GELU", x, options("GeluOptions", approximate=True)),
    "mish": lambda ctx, x: ctx.binary("MUL", x, ctx.unary("TANH", _softplus(ctx, x))),
    "hard_silu": lambda ctx, x: ctx.unary("HARD_SWISH", x),
    "hard_sigmoid": lambda ctx, x: ctx.binary(
        "MUL", ctx.unary("RELU6", ctx.binary("ADD", x, ctx.scalar(3.0))), ctx.scalar(1.0 / 6.0)
    ),
    LEGACY_HARD_SIGMOID: lambda ctx, x: _clip(
        ctx, ctx.binary("ADD", ctx.binary("MUL", x, ctx.scalar(0.2)), ctx.scalar(0.5)), 0.0, 1.0
    ),
    "leaky_relu": lambda ctx, x: ctx.unary("LEAKY_RELU", x, options("LeakyReluOptions", alpha=0.2)),
    "hard_tanh": lambda ctx, x: _clip(ctx, x, -1.0, 1.0),
    "tanh_shrink": lambda ctx, x: ctx.binary("SUB", x, ctx.unary("TANH", x)),
    "celu": lambda ctx, x: ctx.binary("ADD", ctx.unary("RELU", x),
                                      ctx.unary("ELU", ctx.binary("MINIMUM", x, ctx.scalar(0.0)))),  # fmt: skip
    "soft_shrink": lambda ctx, x: ctx.binary("SUB", x, _clip(ctx, x, -0.5, 0.5)),
    "hard_shrink": lambda ctx, x: ctx.binary(
        "MUL", x, ctx.op("CAST", [ctx.op("GREATER", [ctx.unary("ABS", x), ctx.scalar(0.5)], x.shape, "bool")], x.shape)
    ),
    "log_sigmoid": lambda ctx, x: ctx.unary("NEG", _softplus(ctx, ctx.unary("NEG", x))),
}
#: activations over the last axis
AXIS_WISE = {"softmax": ("SOFTMAX", "SoftmaxOptions"), "log_softmax": ("LOG_SOFTMAX", "LogSoftmaxOptions")}


def covered(spec: object, generation: int) -> bool:
    name = activation_name(spec, generation)
    return name in ELEMENTWISE or name in AXIS_WISE


def apply(ctx: LiteContext, layer: Layer, x: Value, spec: object, axis: int = -1) -> Value:
    """`x` through the activation `spec` names (a layer's `activation` argument)."""
    name = activation_name(spec, layer.generation)
    if name in ELEMENTWISE:
        return ELEMENTWISE[name](ctx, x)
    if name in AXIS_WISE:
        op, kind = AXIS_WISE[name]
        opts = options(kind, beta=1.0) if kind == "SoftmaxOptions" else options(kind)
        axis %= x.rank
        if axis == x.rank - 1:
            return ctx.unary(op, x, opts)
        # TFLite's op works over the last axis: the axis is moved there and back
        from modeltool.exporters.litert.layout import transpose

        perm = [a for a in range(x.rank) if a != axis] + [axis]
        back = [perm.index(a) for a in range(x.rank)]
        return transpose(ctx, ctx.unary(op, transpose(ctx, x, perm), opts), back)
    raise layer.refuse(f"activation {name!r} has no TFLite lowering")


def activation_layer(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    return [apply(ctx, layer, inputs[0], layer.config.get("activation"))]


def relu_layer(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Keras's ReLU(max_value, negative_slope, threshold), as Keras 2 and 3 compute it: the positive
    part (x where x > threshold, else RELU / RELU6), clipped to [0, max_value], minus
    slope * relu(threshold - x); plain LEAKY_RELU when only the slope is set."""
    x = inputs[0]
    cfg = layer.config
    top = cfg.get("max_value")
    slope = float(cfg.get("negative_slope") or cfg.get("alpha") or 0.0)
    threshold = float(cfg.get("threshold") or 0.0)
    if slope != 0.0 and top is None and threshold == 0.0:
        return [ctx.unary("LEAKY_RELU", x, options("LeakyReluOptions", alpha=slope))]
    clip = top is not None
    if threshold != 0.0:
        above = ctx.op("GREATER", [x, ctx.scalar(threshold)], x.shape, "bool")
        out = ctx.binary("MUL", x, ctx.op("CAST", [above], x.shape))
    elif top is not None and float(top) == 6.0:
        out, clip = ctx.unary("RELU6", x), False
    else:
        out = ctx.unary("RELU", x)
    if clip:
        out = _clip(ctx, out, 0.0, float(top))
    if slope != 0.0:
        below = ctx.op("SUB", [ctx.scalar(threshold), x], x.shape, opts=options("SubOptions"))
        out = ctx.binary("SUB", out, ctx.binary("MUL", ctx.unary("RELU", below), ctx.scalar(slope)))
    return [out]


def leaky_relu_layer(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
    return [ctx.unary("LEAKY_RELU", inputs[0], options("LeakyReluOptions", alpha=float(slope)))]


def elu_layer(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """alpha * (exp(x) - 1) below 0: TFLite's ELU for alpha 1, scaled otherwise."""
    x = inputs[0]
    alpha = float(layer.config.get("alpha", 1.0))
    if alpha == 1.0:
        return [ctx.unary("ELU", x)]
    negative = ctx.binary("MUL", ctx.unary("ELU", ctx.binary("MINIMUM", x, ctx.scalar(0.0))), ctx.scalar(alpha))
    return [ctx.binary("ADD", ctx.unary("RELU", x), negative)]


def thresholded_relu_layer(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """x where x > theta, else 0."""
    x = inputs[0]
    theta = float(layer.config.get("theta", 1.0))
    above = ctx.op("GREATER", [x, ctx.scalar(theta)], x.shape, "bool")
    return [ctx.binary("MUL", x, ctx.op("CAST", [above], x.shape, "float32"))]


def softmax_layer(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    axis = layer.config.get("axis", -1)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise layer.refuse(f"softmax over axes {axis}")
        axis = axis[0]
    if layer.kwargs.get("mask") is not None or inputs[0].mask is not None:
        raise layer.refuse("a masked softmax is not lowered")
    return [apply(ctx, layer, inputs[0], "softmax", int(axis))]


def prelu_layer(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """PRELU with Keras's alpha (its shared axes already 1 in the stored shape)."""
    x = inputs[0]
    alpha = layer.array("alpha").astype(np.float32)
    return [ctx.op("PRELU", [x, ctx.const(alpha, "alpha")], x.shape)]
