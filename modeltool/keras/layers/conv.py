"""Convolutions: plain, transposed, depthwise and separable, 1-3 spatial dims."""

from __future__ import annotations

from modeltool.keras.layers.spec import (
    Family,
    LayerInfo,
    WeightSpec,
    as_tuple,
    assemble,
    channels_first,
    conv_len,
    deconv_len,
    first,
    spatial_dims,
)

family = Family("conv")


def _conv(rank: int, transpose: bool = False):
    def fn(cfg, shapes):
        s = first(shapes)
        cf = channels_first(cfg)
        k = as_tuple(cfg["kernel_size"], rank)
        st = as_tuple(cfg.get("strides", 1), rank)
        dil = as_tuple(cfg.get("dilation_rate", 1), rank)
        pad = cfg.get("padding", "valid")
        filters = cfg["filters"]
        groups = cfg.get("groups", 1) or 1
        spatial, ch = spatial_dims(s, rank, cf)
        if transpose:
            op = cfg.get("output_padding")
            op = as_tuple(op, rank) if op is not None else (None,) * rank
            out = [deconv_len(spatial[i], k[i], st[i], pad, op[i], dil[i]) for i in range(rank)]
            kshape = (*k, filters, ch)
        else:
            out = [conv_len(spatial[i], k[i], st[i], pad, dil[i]) for i in range(rank)]
            kshape = (*k, None if ch is None else ch // groups, filters)
        w = [WeightSpec("kernel", kshape, k3=("", 0))]
        if cfg.get("use_bias", True):
            w.append(WeightSpec("bias", (filters,), k3=("", 1)))
        return LayerInfo([assemble(s[0], out, filters, cf)], w)

    return fn


for _r in (1, 2, 3):
    _lowered = _r < 3  # TFLite convolves 1-D and 2-D windows (a 1-D one as a 2-D one of height 1)
    family.declare(f"Conv{_r}D", onnx="conv:conv", tflite="conv:conv" if _lowered else None)(_conv(_r))
    family.declare(f"Conv{_r}DTranspose", onnx="conv:conv_transpose",
                   tflite="conv:conv_transpose" if _lowered else None)(_conv(_r, transpose=True))  # fmt: skip
family.declare("Convolution1D")(_conv(1))  # Keras 1 names (the loader normalizes them before converting)
family.declare("Convolution2D")(_conv(2))


def _window(cfg: dict, shapes: list, rank: int) -> tuple:
    """(input shape, channels_first, kernel size, output spatial dims, input channels) of a
    strided, dilated window over `rank` spatial dims: what depthwise and separable convs share."""
    s = first(shapes)
    cf = channels_first(cfg)
    k = as_tuple(cfg["kernel_size"], rank)
    st = as_tuple(cfg.get("strides", 1), rank)
    dil = as_tuple(cfg.get("dilation_rate", 1), rank)
    spatial, ch = spatial_dims(s, rank, cf)
    out = [conv_len(spatial[i], k[i], st[i], cfg.get("padding", "valid"), dil[i]) for i in range(rank)]
    return s, cf, k, out, ch


def _depthwise(rank: int):
    def fn(cfg, shapes):
        s, cf, k, out, ch = _window(cfg, shapes, rank)
        dm = cfg.get("depth_multiplier", 1)
        out_ch = None if ch is None else ch * dm
        w = [WeightSpec("kernel", (*k, ch, dm), k3=("", 0))]  # Keras 2 called it depthwise_kernel
        if cfg.get("use_bias", True):
            w.append(WeightSpec("bias", (out_ch,), k3=("", 1)))
        return LayerInfo([assemble(s[0], out, out_ch, cf)], w)

    return fn


def _separable(rank: int):
    def fn(cfg, shapes):
        s, cf, k, out, ch = _window(cfg, shapes, rank)
        dm = cfg.get("depth_multiplier", 1)
        filters = cfg["filters"]
        mid = None if ch is None else ch * dm
        w = [
            WeightSpec("depthwise_kernel", (*k, ch, dm), k3=("", 0)),
            WeightSpec("pointwise_kernel", (*(1,) * rank, mid, filters), k3=("", 1)),
        ]
        if cfg.get("use_bias", True):
            w.append(WeightSpec("bias", (filters,), k3=("", 2)))
        return LayerInfo([assemble(s[0], out, filters, cf)], w)

    return fn


for _r in (1, 2):
    family.declare(f"DepthwiseConv{_r}D", onnx="conv:depthwise", tflite="conv:depthwise")(_depthwise(_r))
    family.declare(f"SeparableConv{_r}D", onnx="conv:separable", tflite="conv:separable")(_separable(_r))
    family.declare(f"SeparableConvolution{_r}D")(_separable(_r))
