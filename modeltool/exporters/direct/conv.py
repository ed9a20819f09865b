"""Convolutions: Conv1D/2D/3D, their transposes, DepthwiseConv1D/2D and SeparableConv1D/2D.

Computed channels-first (ONNX's Conv), kernels moved from Keras's `(*window, in, out)` layout once,
here. Padding is Keras's: 'same' is TensorFlow's (the odd pixel of padding goes at the end; explicit
pads when the spatial size is known, ONNX's SAME_UPPER otherwise, which pads the same way), 'causal'
pads the start only. Transposed convolutions take their padding from Keras's own formula for the
JAX backend (`_convert_conv_transpose_padding_args_from_keras_to_jax`), which all backends agree on.
"""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct import activations
from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context, Layer
from modeltool.exporters.direct.layout import channels_first


def tuple_arg(value: object, rank: int, default: int = 1) -> tuple[int, ...]:
    """A Keras int-or-tuple argument as `rank` ints."""
    if value is None:
        return (default,) * rank
    if isinstance(value, int):
        return (value,) * rank
    values = tuple(int(v) for v in value)  # type: ignore[union-attr]
    return values * rank if len(values) == 1 else values


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's 'same': total padding max((ceil(n/s) - 1) * s + k_eff - n, 0), the larger half last."""
    effective = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def window_attrs(layer: Layer, spatial: tuple, kernel: tuple[int, ...], strides: tuple[int, ...],
                 dilations: tuple[int, ...], padding: str) -> dict:  # fmt: skip
    """kernel_shape/strides/dilations and pads (or auto_pad) of a convolution or pooling window."""
    attrs: dict = {"kernel_shape": list(kernel), "strides": list(strides)}
    if padding == "valid":
        attrs["pads"] = [0] * (2 * len(kernel))
    elif padding == "same":
        if any(d is None for d in spatial):
            attrs["auto_pad"] = "SAME_UPPER"
        else:
            pairs = [same_pads(n, k, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilations)]
            attrs["pads"] = [p[0] for p in pairs] + [p[1] for p in pairs]
    elif padding == "causal":
        attrs["pads"] = [(k - 1) * d for k, d in zip(kernel, dilations)] + [0] * len(kernel)
    else:
        raise layer.refuse(f"padding={padding!r} is not written by the direct route")
    return attrs


def _setup(ctx: Context, layer: Layer, x: Value) -> tuple[Value, int, dict]:
    cfg = layer.config
    rank = x.rank - 2
    fmt = cfg.get("data_format") or "channels_last"
    x = channels_first(ctx, x, fmt)
    kernel = tuple_arg(cfg.get("kernel_size"), rank)
    strides = tuple_arg(cfg.get("strides"), rank)
    dilations = tuple_arg(cfg.get("dilation_rate"), rank)
    spatial = x.physical_shape[2:]
    attrs = window_attrs(layer, spatial, kernel, strides, dilations, str(cfg.get("padding", "valid")).lower())
    attrs["dilations"] = list(dilations)
    return x, rank, attrs


def _out(layer: Layer, x: Value, name: str, channels: int) -> Value:
    """The output value, held as the input was (channels-first); its Keras shape from the IR."""
    shape = layer.out_shapes[0] if layer.out_shapes and layer.out_shapes[0] is not None else None
    if shape is None:
        raise layer.refuse("output shape unknown")
    return Value(name, tuple(shape), "float32", x.perm)


def _bias(ctx: Context, layer: Layer) -> list[str]:
    if layer.config.get("use_bias", True) and layer.has("bias"):
        return [ctx.const(layer.array("bias").astype(np.float32).reshape(-1), "bias")]
    return []


def conv(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    x, rank, attrs = _setup(ctx, layer, inputs[0])
    kernel = layer.array("kernel").astype(np.float32)
    if kernel.ndim != rank + 2:
        raise layer.refuse(f"kernel of shape {kernel.shape} for a {rank}-D convolution")
    weight = np.transpose(kernel, (rank + 1, rank, *range(rank)))
    groups = int(layer.config.get("groups") or 1)
    name = ctx.op("Conv", [x.name, ctx.const(weight, "kernel"), *_bias(ctx, layer)], group=groups, **attrs)
    out = _out(layer, x, name, weight.shape[0])
    return [activations.apply(ctx, layer, out, layer.config.get("activation"))]


def depthwise(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """One filter set per input channel: output channel c*m + j is input channel c's j-th filter
    (TensorFlow's order), a Conv with group = input channels."""
    x, rank, attrs = _setup(ctx, layer, inputs[0])
    kernel = (layer.array("kernel") if layer.has("kernel") else layer.array("depthwise_kernel")).astype(np.float32)
    channels, multiplier = kernel.shape[-2], kernel.shape[-1]
    weight = np.transpose(kernel.reshape((*kernel.shape[:rank], 1, channels * multiplier)),
                          (rank + 1, rank, *range(rank)))  # fmt: skip
    name = ctx.op("Conv", [x.name, ctx.const(weight, "kernel"), *_bias(ctx, layer)], group=channels, **attrs)
    out = _out(layer, x, name, channels * multiplier)
    return [activations.apply(ctx, layer, out, layer.config.get("activation"))]


def separable(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Depthwise (strides, dilation and padding are its own) then a 1x1 pointwise convolution."""
    x, rank, attrs = _setup(ctx, layer, inputs[0])
    depth = layer.array("depthwise_kernel").astype(np.float32)
    point = layer.array("pointwise_kernel").astype(np.float32)
    channels, multiplier = depth.shape[-2], depth.shape[-1]
    dw = np.transpose(depth.reshape((*depth.shape[:rank], 1, channels * multiplier)), (rank + 1, rank, *range(rank)))
    mid = ctx.op("Conv", [x.name, ctx.const(dw, "depthwise_kernel")], group=channels, **attrs)
    pw = np.transpose(point, (rank + 1, rank, *range(rank)))
    ones = [1] * rank
    name = ctx.op("Conv", [mid, ctx.const(pw, "pointwise_kernel"), *_bias(ctx, layer)], kernel_shape=ones,
                  strides=ones, dilations=ones, pads=[0] * (2 * rank))  # fmt: skip
    out = _out(layer, x, name, pw.shape[0])
    return [activations.apply(ctx, layer, out, layer.config.get("activation"))]


def transpose_pads(kernel: int, stride: int, dilation: int, padding: str, output_padding: int | None,
                   ) -> tuple[int, int, int]:  # fmt: skip
    """(pad begin, pad end, output padding) of ONNX ConvTranspose giving Keras's output: Keras's JAX
    formulation pads the stride-dilated input by (left, right) before a valid correlation with the
    window; ONNX's full output is that with k_eff - 1 on both sides."""
    effective = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(effective, stride) - effective if output_padding is None else output_padding
        left, right = effective - 1, effective - 1 + extra
    else:
        if output_padding is None:
            total = stride + effective - 2
        else:
            total = effective + effective % 2 - 2 + output_padding
        left = min(total // 2 + total % 2, effective - 1)
        right = total - left
    begin, end = effective - 1 - left, effective - 1 - right
    return begin, max(end, 0), max(-end, 0)


def conv_transpose(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    x = inputs[0]
    rank = x.rank - 2
    x = channels_first(ctx, x, cfg.get("data_format") or "channels_last")
    kernel_size = tuple_arg(cfg.get("kernel_size"), rank)
    strides = tuple_arg(cfg.get("strides"), rank)
    dilations = tuple_arg(cfg.get("dilation_rate"), rank)
    out_pad = cfg.get("output_padding")
    out_pads = [None] * rank if out_pad is None else list(tuple_arg(out_pad, rank, 0))
    padding = str(cfg.get("padding", "valid")).lower()
    if padding not in ("valid", "same"):
        raise layer.refuse(f"padding={padding!r} is not written by the direct route")
    pads = [transpose_pads(k, s, d, padding, p) for k, s, d, p in zip(kernel_size, strides, dilations, out_pads)]
    if any(p[0] < 0 for p in pads):
        raise layer.refuse("an output_padding that crops the start is not expressible as ONNX ConvTranspose")
    kernel = layer.array("kernel").astype(np.float32)  # (*window, out, in)
    weight = np.transpose(kernel, (rank + 1, rank, *range(rank)))  # (in, out, *window)
    name = ctx.op("ConvTranspose", [x.name, ctx.const(weight, "kernel"), *_bias(ctx, layer)],
                  kernel_shape=list(kernel_size), strides=list(strides), dilations=list(dilations),
                  pads=[p[0] for p in pads] + [p[1] for p in pads],
                  output_padding=[p[2] for p in pads] if any(p[2] for p in pads) else None)  # fmt: skip
    out = _out(layer, x, name, weight.shape[1])
    return [activations.apply(ctx, layer, out, cfg.get("activation"))]
