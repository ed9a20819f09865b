"""Normalization layers: batch, layer (also RMS), group, unit, and the preprocessing Normalization."""

from __future__ import annotations

import math

from modeltool.keras.layers.spec import Family, LayerInfo, WeightSpec, axes_of, first

family = Family("normalization")


def _norm_dims(cfg, s, default=-1) -> tuple:
    axes = axes_of(cfg.get("axis", default), len(s))
    return tuple(s[a] for a in axes)


def _affine(cfg: dict, dims: tuple) -> list[WeightSpec]:
    """gamma (if `scale`) and beta (if `center`), the affine part of the normalization layers."""
    w: list[WeightSpec] = []
    for role, flag in (("gamma", "scale"), ("beta", "center")):
        if cfg.get(flag, True):
            w.append(WeightSpec(role, dims, k3=("", len(w))))
    return w


@family.declare("BatchNormalization", onnx="normalization:batch_normalization", mask=True,
                tflite="normalization:batch_normalization")
def _batchnorm(cfg, shapes):
    s = first(shapes)
    dims = _norm_dims(cfg, s)
    dims = (int(math.prod(dims)),) if len(dims) > 1 and None not in dims else dims
    w = _affine(cfg, dims)
    i = len(w)
    w += [WeightSpec("moving_mean", dims, False, ("", i)), WeightSpec("moving_variance", dims, False, ("", i + 1))]
    return LayerInfo([s], w)


@family.declare("LayerNormalization", onnx="normalization:layer_normalization", mask=True,
                tflite="normalization:layer_normalization")
def _layernorm(cfg, shapes):
    s = first(shapes)
    dims = _norm_dims(cfg, s)
    if cfg.get("rms_scaling"):
        return LayerInfo([s], [WeightSpec("gamma", dims)])
    return LayerInfo([s], _affine(cfg, dims))


@family.declare("GroupNormalization", onnx="normalization:group_normalization",
                tflite="normalization:group_normalization")
def _groupnorm(cfg, shapes):
    s = first(shapes)
    return LayerInfo([s], _affine(cfg, (s[cfg.get("axis", -1)],)))


@family.declare("Normalization", onnx="core:normalization", tflite="normalization:normalization")
def _normalization(cfg, shapes):
    s = first(shapes)
    if cfg.get("mean") is not None and cfg.get("variance") is not None:
        return LayerInfo([s])
    dims = _norm_dims(cfg, s)
    return LayerInfo(
        [s],
        [
            WeightSpec("mean", dims, False, ("", 0)),
            WeightSpec("variance", dims, False, ("", 1)),
            WeightSpec("count", (), False, ("", 2)),
        ],
    )


@family.declare("UnitNormalization", onnx="normalization:unit_normalization", mask=True,
                tflite="normalization:unit_normalization")
def _unit(cfg, shapes):
    return LayerInfo([first(shapes)])
