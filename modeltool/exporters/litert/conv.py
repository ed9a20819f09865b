"""Convolutions as TFLite ops, channels-last as Keras computes them: CONV_2D, DEPTHWISE_CONV_2D and
TRANSPOSE_CONV, 1-D windows as 2-D ones of height 1 (a RESHAPE on each side).

Kernels are moved once from Keras's `(*window, in, out)` layout: CONV_2D takes `(out, h, w, in)`,
DEPTHWISE_CONV_2D `(1, h, w, in * multiplier)` (TensorFlow's channel order), TRANSPOSE_CONV
`(out, h, w, in)` from Keras's `(h, w, out, in)`. 'same' and 'valid' are TFLite's own SAME and
VALID (TensorFlow's rule, the odd pixel of padding at the end); 'causal' pads the start with a PAD.
A bias is always given (zeros where Keras has none), so BatchNormalization can fold into it.
"""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.direct.conv import tuple_arg
from modeltool.exporters.litert import activations
from modeltool.exporters.litert.context import LiteContext, options
from modeltool.exporters.litert.core import out_shape
from modeltool.exporters.litert.layout import channels_first_aware

PADDING = {"same": 0, "valid": 1}  # the schema's Padding enum


def _window(layer: Layer, x: Value) -> tuple[int, tuple[int, ...], tuple[int, ...], str]:
    """(spatial rank, strides, dilations, padding) of a 1-D or 2-D channels-last window."""
    cfg = layer.config
    rank = x.rank - 2
    if rank not in (1, 2):
        raise layer.refuse(f"a {rank}-D window is not lowered")
    padding = str(cfg.get("padding", "valid")).lower()
    if padding not in ("same", "valid", "causal"):
        raise layer.refuse(f"padding={padding!r} is not lowered")
    return rank, tuple_arg(cfg.get("strides"), rank), tuple_arg(cfg.get("dilation_rate"), rank), padding


def _as_2d(ctx: LiteContext, x: Value, rank: int, kernel_len: int, dilation: int, padding: str) -> tuple[Value, str]:
    """A 1-D input as (batch, 1, steps, channels), causal padding written out; the padding left."""
    if rank == 1:
        x = ctx.reshape(x, (x.shape[0], 1, x.shape[1], x.shape[2]))
    if padding == "causal":
        pad = (kernel_len - 1) * dilation
        rows = [[0, 0], [0, 0], [pad, 0], [0, 0]]
        shape = (x.shape[0], x.shape[1], None if x.shape[2] is None else x.shape[2] + pad, x.shape[3])
        x = ctx.op("PAD", [x, ctx.const(np.asarray(rows, np.int32), "paddings")], shape, x.dtype)
        padding = "valid"
    return x, padding


def _pairs(rank: int, values: tuple[int, ...]) -> tuple[int, int]:
    return (1, values[0]) if rank == 1 else (values[0], values[1])


def _finish(ctx: LiteContext, layer: Layer, y: Value, rank: int) -> list[Value]:
    shape = out_shape(layer)
    if rank == 1:
        y = ctx.reshape(y, shape)
    return [activations.apply(ctx, layer, y, layer.config.get("activation"))]


def _spatial_out(layer: Layer, rank: int) -> tuple:
    shape = out_shape(layer)
    return (shape[0], 1, shape[1], shape[2]) if rank == 1 else shape


def _bias(layer: Layer, size: int) -> np.ndarray:
    if layer.config.get("use_bias", True) and layer.has("bias"):
        return layer.array("bias").astype(np.float32).reshape(-1)
    return np.zeros(size, np.float32)


@channels_first_aware
def conv(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    rank, strides, dilations, padding = _window(layer, x)
    groups = int(layer.config.get("groups") or 1)
    kernel = layer.array("kernel").astype(np.float32)
    if rank == 1:
        kernel = kernel[None]
    if groups > 1 and groups == x.shape[-1] and kernel.shape[2] == 1:
        # one group per input channel (ConvNeXt's depthwise layers): output channel c*m + j reads
        # channel c, as DEPTHWISE_CONV_2D's channel order has it
        x, padding = _as_2d(ctx, x, rank, kernel.shape[1], dilations[0], padding)
        weight = kernel.reshape(1, kernel.shape[0], kernel.shape[1], kernel.shape[3])
        y = _depthwise_op(ctx, layer, x, weight, _bias(layer, kernel.shape[3]), kernel.shape[3] // groups, rank,
                          strides, dilations, padding, _spatial_out(layer, rank))  # fmt: skip
        return _finish(ctx, layer, y, rank)
    if groups != 1:
        raise layer.refuse(f"a grouped convolution ({groups} groups of more than one channel) is not lowered")
    weight = np.ascontiguousarray(np.transpose(kernel, (3, 0, 1, 2)))
    x, padding = _as_2d(ctx, x, rank, kernel.shape[1], dilations[0], padding)
    sh, sw = _pairs(rank, strides)
    dh, dw = _pairs(rank, dilations)
    opts = options("Conv2DOptions", padding=PADDING[padding], strideH=sh, strideW=sw, dilationHFactor=dh,
                   dilationWFactor=dw)  # fmt: skip
    y = ctx.op("CONV_2D", [x, ctx.const(weight, "kernel"), ctx.const(_bias(layer, weight.shape[0]), "bias")],
               _spatial_out(layer, rank), opts=opts)  # fmt: skip
    return _finish(ctx, layer, y, rank)


@channels_first_aware
def depthwise(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    rank, strides, dilations, padding = _window(layer, x)
    kernel = (layer.array("kernel") if layer.has("kernel") else layer.array("depthwise_kernel")).astype(np.float32)
    if rank == 1:
        kernel = kernel[None]
    channels, multiplier = kernel.shape[2], kernel.shape[3]
    weight = kernel.reshape(1, kernel.shape[0], kernel.shape[1], channels * multiplier)
    x, padding = _as_2d(ctx, x, rank, kernel.shape[1], dilations[0], padding)
    y = _depthwise_op(ctx, layer, x, weight, _bias(layer, channels * multiplier), multiplier, rank, strides,
                      dilations, padding, _spatial_out(layer, rank))  # fmt: skip
    return _finish(ctx, layer, y, rank)


def _depthwise_op(ctx: LiteContext, layer: Layer, x: Value, weight: np.ndarray, bias: np.ndarray, multiplier: int,
                  rank: int, strides: tuple, dilations: tuple, padding: str, shape: tuple) -> Value:  # fmt: skip
    sh, sw = _pairs(rank, strides)
    dh, dw = _pairs(rank, dilations)
    opts = options("DepthwiseConv2DOptions", padding=PADDING[padding], strideH=sh, strideW=sw,
                   depthMultiplier=multiplier, dilationHFactor=dh, dilationWFactor=dw)  # fmt: skip
    return ctx.op("DEPTHWISE_CONV_2D", [x, ctx.const(weight, "depthwise_kernel"), ctx.const(bias, "depthwise_bias")],
                  shape, opts=opts)  # fmt: skip


@channels_first_aware
def separable(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """The depthwise convolution (strides, dilation and padding are its own), then a 1x1 CONV_2D."""
    x = inputs[0]
    rank, strides, dilations, padding = _window(layer, x)
    depth = layer.array("depthwise_kernel").astype(np.float32)
    point = layer.array("pointwise_kernel").astype(np.float32)
    if rank == 1:
        depth, point = depth[None], point[None]
    channels, multiplier = depth.shape[2], depth.shape[3]
    x, padding = _as_2d(ctx, x, rank, depth.shape[1], dilations[0], padding)
    final = _spatial_out(layer, rank)
    mid = _depthwise_op(ctx, layer, x, depth.reshape(1, depth.shape[0], depth.shape[1], channels * multiplier),
                        np.zeros(channels * multiplier, np.float32), multiplier, rank, strides, dilations, padding,
                        (*final[:-1], channels * multiplier))  # fmt: skip
    weight = np.ascontiguousarray(np.transpose(point, (3, 0, 1, 2)))
    opts = options("Conv2DOptions", padding=PADDING["valid"], strideH=1, strideW=1, dilationHFactor=1,
                   dilationWFactor=1)  # fmt: skip
    bias = ctx.const(_bias(layer, weight.shape[0]), "bias")
    y = ctx.op("CONV_2D", [mid, ctx.const(weight, "pointwise_kernel"), bias], final, opts=opts)
    return _finish(ctx, layer, y, rank)


@channels_first_aware
def conv_transpose(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """TRANSPOSE_CONV with the output shape Keras computes (`output_padding` included; the batch read
    from the input at run time when it is open), a 1-D one as 2-D of height 1. Given the output shape
    and SAME/VALID, TRANSPOSE_CONV pads as TensorFlow's conv2d_transpose, which Keras calls."""
    x = inputs[0]
    rank, strides, dilations, padding = _window(layer, x)
    if padding == "causal":
        raise layer.refuse("a transposed convolution with 'causal' padding is not lowered")
    if any(d != 1 for d in dilations):
        raise layer.refuse("a dilated transposed convolution is not lowered")
    final = out_shape(layer)
    if any(d is None for d in final[1:]):
        raise layer.refuse("output dims of unknown size")
    kernel = layer.array("kernel").astype(np.float32)  # (*window, out, in)
    if rank == 1:
        kernel, x = kernel[None], ctx.reshape(x, (x.shape[0], 1, x.shape[1], x.shape[2]))
    shape = _spatial_out(layer, rank)
    weight = np.ascontiguousarray(np.transpose(kernel, (2, 0, 1, 3)))
    if shape[0] is None:
        batch = ctx.op("SLICE", [ctx.op("SHAPE", [x], (4,), "int32", options("ShapeOptions", outType=2)),
                                 ctx.ints([0]), ctx.ints([1])], (1,), "int32")  # fmt: skip
        size = ctx.op("CONCATENATION", [batch, ctx.ints(list(shape[1:]))], (4,), "int32",
                      options("ConcatenationOptions", axis=0))  # fmt: skip
    else:
        size = ctx.ints(list(shape))
    sh, sw = _pairs(rank, strides)
    opts = options("TransposeConvOptions", padding=PADDING[padding], strideH=sh, strideW=sw)
    y = ctx.op("TRANSPOSE_CONV", [size, ctx.const(weight, "kernel"), x,
                                  ctx.const(_bias(layer, weight.shape[0]), "bias")], shape, opts=opts,
               version=3)  # fmt: skip
    return _finish(ctx, layer, y, rank)
