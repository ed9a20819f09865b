"""Activation functions (the `activation` argument of any layer, `Activation` layers) and the
activation layers (ReLU, LeakyReLU, ELU, Softmax, PReLU, ThresholdedReLU).

Each follows Keras's definition: `gelu` is the exact (erf) form in Keras 3 and tf_keras, `relu`
with a threshold and a slope is Keras's piecewise formula, and `hard_sigmoid` means what the file's
writer meant: `clip(0.2x + 0.5, 0, 1)` in Keras 1/2 (ONNX `HardSigmoid(0.2, 0.5)`), `relu6(x + 3) / 6`
in Keras 3 (`HardSigmoid(1/6, 0.5)`); see docs/keras-semantics.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context, Layer
from modeltool.exporters.direct.layout import broadcast_shape, logical

#: Keras's SELU constants (keras.activations.selu)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
ALIASES = {"swish": "silu", "hard_swish": "hard_silu", None: "linear", "": "linear"}
LEGACY_HARD_SIGMOID = "legacy_hard_sigmoid"


def activation_name(spec: Any, generation: int) -> str:
    """The function an activation config value names; Keras 1/2's hard sigmoid becomes
    `legacy_hard_sigmoid` (as does modeltool's registered `modeltool>legacy_hard_sigmoid`)."""
    if isinstance(spec, dict):
        if spec.get("class_name") != "function" or not isinstance(spec.get("config"), str):
            return f"<{spec.get('class_name')}>"
        spec = spec["config"].split(">")[-1]
    name = ALIASES.get(spec, spec)
    if name == "hard_sigmoid" and generation < 3:
        return LEGACY_HARD_SIGMOID
    return str(name)


def _sequence(*steps: tuple[str, dict[str, Any]]) -> Callable[[Context, str], str]:
    def apply(ctx: Context, x: str) -> str:
        for op_type, attrs in steps:
            x = ctx.op(op_type, [x], **attrs)
        return x

    return apply


def _silu(ctx: Context, x: str) -> str:
    return ctx.op("Mul", [x, ctx.op("Sigmoid", [x])])


def _gelu(ctx: Context, x: str) -> str:
    """0.5 * x * (1 + erf(x / sqrt(2))): Keras's default (exact) GELU."""
    if ctx.opset >= 20:
        return ctx.op("Gelu", [x])
    inner = ctx.op("Erf", [ctx.op("Div", [x, ctx.const(np.float32(math.sqrt(2.0)))])])
    return ctx.op("Mul", [ctx.op("Mul", [x, ctx.op("Add", [inner, ctx.const(np.float32(1.0))])]),
                          ctx.const(np.float32(0.5))])  # fmt: skip


def _gelu_approximate(ctx: Context, x: str) -> str:
    """0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))): Keras's gelu(approximate=True),
    KerasHub's `gelu_approximate` (BERT, GPT-2)."""
    if ctx.opset >= 20:
        return ctx.op("Gelu", [x], approximate="tanh")
    cube = ctx.op("Mul", [ctx.op("Mul", [x, x]), x])
    inner = ctx.op("Add", [x, ctx.op("Mul", [cube, ctx.const(np.float32(0.044715))])])
    tanh = ctx.op("Tanh", [ctx.op("Mul", [inner, ctx.const(np.float32(math.sqrt(2.0 / math.pi)))])])
    return ctx.op("Mul", [ctx.op("Mul", [x, ctx.op("Add", [tanh, ctx.const(np.float32(1.0))])]),
                          ctx.const(np.float32(0.5))])  # fmt: skip


def _mish(ctx: Context, x: str) -> str:
    if ctx.opset >= 18:
        return ctx.op("Mish", [x])
    return ctx.op("Mul", [x, ctx.op("Tanh", [ctx.op("Softplus", [x])])])


def _tanh_shrink(ctx: Context, x: str) -> str:
    return ctx.op("Sub", [x, ctx.op("Tanh", [x])])


def _log_sigmoid(ctx: Context, x: str) -> str:
    return ctx.op("Neg", [ctx.op("Softplus", [ctx.op("Neg", [x])])])


#: elementwise activations: name -> writer (layout-free: they keep the value's axis order)
ELEMENTWISE: dict[str, Callable[[Context, str], str]] = {
    "relu": _sequence(("Relu", {})),
    "relu6": lambda ctx, x: _clip(ctx, x, 0.0, 6.0),
    "sigmoid": _sequence(("Sigmoid", {})),
    "tanh": _sequence(("Tanh", {})),
    "elu": _sequence(("Elu", {"alpha": 1.0})),
    "selu": _sequence(("Selu", {"alpha": SELU_ALPHA, "gamma": SELU_SCALE})),
    "softplus": _sequence(("Softplus", {})),
    "softsign": _sequence(("Softsign", {})),
    "exponential": _sequence(("Exp", {})),
    "silu": _silu,
    "gelu": _gelu,
    "gelu_approximate": _gelu_approximate,
    "mish": _mish,
    "hard_silu": _sequence(("HardSwish", {})),
    "hard_sigmoid": _sequence(("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5})),
    LEGACY_HARD_SIGMOID: _sequence(("HardSigmoid", {"alpha": 0.2, "beta": 0.5})),
    "leaky_relu": _sequence(("LeakyRelu", {"alpha": 0.2})),
    "hard_tanh": lambda ctx, x: _clip(ctx, x, -1.0, 1.0),
    "celu": _sequence(("Celu", {"alpha": 1.0})),
    "tanh_shrink": _tanh_shrink,
    "log_sigmoid": _log_sigmoid,
    "soft_shrink": _sequence(("Shrink", {"bias": 0.5, "lambd": 0.5})),
    "hard_shrink": _sequence(("Shrink", {"bias": 0.0, "lambd": 0.5})),
}
#: activations over an axis (the last one)
AXIS_WISE = {"softmax": "Softmax", "log_softmax": "LogSoftmax"}
#: names an RNN op computes inside itself: Keras activation -> (ONNX name, alpha, beta)
RNN_ACTIVATIONS = {
    "sigmoid": ("Sigmoid", None, None), "tanh": ("Tanh", None, None), "relu": ("Relu", None, None),
    "softsign": ("Softsign", None, None), "softplus": ("Softplus", None, None), "elu": ("Elu", 1.0, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5), LEGACY_HARD_SIGMOID: ("HardSigmoid", 0.2, 0.5),
    "linear": ("Affine", 1.0, 0.0),
}  # fmt: skip


def covered(spec: Any, generation: int) -> bool:
    name = activation_name(spec, generation)
    return name == "linear" or name in ELEMENTWISE or name in AXIS_WISE


def _clip(ctx: Context, x: str, low: float, high: float) -> str:
    return ctx.op("Clip", [x, ctx.const(np.float32(low)), ctx.const(np.float32(high))])


def apply(ctx: Context, layer: Layer, x: Value, spec: Any) -> Value:
    """`x` through the activation `spec` names (a config value: string, Keras 3 function dict, None)."""
    name = activation_name(spec, layer.generation)
    if name == "linear":
        return x
    if name in ELEMENTWISE:
        return x.but(name=ELEMENTWISE[name](ctx, x.name))
    if name in AXIS_WISE:
        return x.but(name=ctx.op(AXIS_WISE[name], [x], axis=x.axis(-1)))
    raise layer.refuse(f"activation {name!r} has no direct ONNX form here")


# ---------------------------------------------------------------- activation layers


def activation_layer(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    return [apply(ctx, layer, inputs[0], layer.config.get("activation"))]


def relu_layer(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Keras's `relu(x, negative_slope, max_value, threshold)`: x above the threshold (clipped at
    max_value), `negative_slope * (x - threshold)` below it."""
    x = inputs[0]
    cfg = layer.config
    slope = float(cfg.get("negative_slope") or 0.0)
    top = cfg.get("max_value")
    threshold = float(cfg.get("threshold") or 0.0)
    if slope == 0.0 and threshold == 0.0:
        name = ctx.op("Relu", [x]) if top is None else _clip(ctx, x.name, 0.0, float(top))
        return [x.but(name=name)]
    if top is None and threshold == 0.0:
        return [x.but(name=ctx.op("LeakyRelu", [x], alpha=slope))]
    if threshold != 0.0:
        zero = ctx.const(np.float32(0.0))
        positive = ctx.op("Where", [ctx.op("Greater", [x, ctx.const(np.float32(threshold))]), x, zero])
    else:
        positive = ctx.op("Relu", [x])
    if top is not None:
        positive = _clip(ctx, positive, 0.0, float(top))
    if slope == 0.0:
        return [x.but(name=positive)]
    below = ctx.op("Relu", [ctx.op("Sub", [ctx.const(np.float32(threshold)), x])])
    return [x.but(name=ctx.op("Sub", [positive, ctx.op("Mul", [below, ctx.const(np.float32(slope))])]))]


def leaky_relu_layer(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    slope = layer.config.get("negative_slope", layer.config.get("alpha", 0.3))
    return [inputs[0].but(name=ctx.op("LeakyRelu", [inputs[0]], alpha=float(slope)))]


def elu_layer(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    return [inputs[0].but(name=ctx.op("Elu", [inputs[0]], alpha=float(layer.config.get("alpha", 1.0))))]


def thresholded_relu_layer(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Keras 2's ThresholdedReLU: x where x > theta, else 0 (ONNX ThresholdedRelu exactly)."""
    theta = float(layer.config.get("theta", 1.0))
    return [inputs[0].but(name=ctx.op("ThresholdedRelu", [inputs[0]], alpha=theta))]


def softmax_layer(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    if len(inputs) > 1:
        raise layer.refuse(f"a Softmax of {len(inputs)} inputs")
    if x.mask is not None:  # Keras: masked positions become -1e9 before the softmax
        x = logical(ctx, x)
        x = x.but(name=ctx.op("Where", [x.mask, x, ctx.const(np.float32(-1e9))]), mask=None)
    axis = layer.config.get("axis", -1)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return [_softmax_axes(ctx, x, [int(a) for a in axis])]
        axis = axis[0]
    return [x.but(name=ctx.op("Softmax", [x], axis=x.axis(int(axis))))]


def _softmax_axes(ctx: Context, x: Value, axes: list[int]) -> Value:
    """Softmax over several axes: exp(x - max) / sum(exp(x - max)), as Keras computes it."""
    phys = sorted(x.axis(a) for a in axes)
    top = ctx.reduce("ReduceMax", x.name, phys, True)
    e = ctx.op("Exp", [ctx.op("Sub", [x, top])])
    return x.but(name=ctx.op("Div", [e, ctx.reduce("ReduceSum", e, phys, True)]))


def prelu_layer(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """PReLU: `alpha` has the input's shape without the batch axis (1 on `shared_axes`); held in
    the value's physical order so that ONNX's right-aligned broadcasting meets the right axes."""
    x = inputs[0]
    alpha = layer.array("alpha")
    if x.perm is not None:
        if alpha.ndim + 1 == x.rank:
            alpha = np.transpose(alpha.reshape((1, *alpha.shape)), x.perm)
        else:
            x = logical(ctx, x)
    return [x.but(name=ctx.op("PRelu", [x, ctx.const(alpha.astype(np.float32), "alpha")]))]


def per_axis_constant(ctx: Context, x: Value, values: np.ndarray, axis: int, role: str) -> str:
    """`values` (one per entry of logical `axis` of `x`) as a constant broadcasting against `x`."""
    values = np.asarray(values, np.float32).reshape(-1)
    if values.size == 1:
        return ctx.const(values.reshape(()), role)
    return ctx.const(values.reshape(broadcast_shape(x, [axis], [values.size])), role)
