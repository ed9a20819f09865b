"""Spatial resampling: padding, cropping, up-sampling, resizing."""

from __future__ import annotations

from typing import Any

from modeltool.keras.layers.spec import (
    Family,
    LayerInfo,
    as_tuple,
    assemble,
    channels_first,
    first,
    spatial_dims,
)

family = Family("spatial")


def _pad_pairs(value: Any, rank: int) -> list[tuple[int, int]]:
    if isinstance(value, int):
        return [(value, value)] * rank
    value = list(value)
    if rank == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [(value[0], value[1])]
    pairs = []
    for v in value:
        pairs.append((v, v) if isinstance(v, int) else (v[0], v[1]))
    return pairs


def _padding_layer(rank: int, sign: int, key: str):
    def fn(cfg, shapes):
        s = first(shapes)
        cf = channels_first(cfg) if rank > 1 else False
        pairs = _pad_pairs(cfg.get(key, 1), rank)
        spatial, ch = spatial_dims(s, rank, cf)
        out = [None if d is None else d + sign * (a + b) for d, (a, b) in zip(spatial, pairs)]
        return LayerInfo([assemble(s[0], out, ch, cf)])

    return fn


def _upsampling(rank: int):
    def fn(cfg, shapes):
        s = first(shapes)
        cf = channels_first(cfg) if rank > 1 else False
        size = as_tuple(cfg.get("size", 2), rank)
        spatial, ch = spatial_dims(s, rank, cf)
        out = [None if d is None else d * f for d, f in zip(spatial, size)]
        return LayerInfo([assemble(s[0], out, ch, cf)])

    return fn


for _r in (1, 2, 3):
    family.declare(f"ZeroPadding{_r}D", onnx="spatial:zero_padding", tflite="spatial:zero_padding")(
        _padding_layer(_r, 1, "padding"))
    family.declare(f"Cropping{_r}D", onnx="spatial:cropping", tflite="spatial:cropping")(
        _padding_layer(_r, -1, "cropping"))
    family.declare(f"UpSampling{_r}D", onnx="spatial:upsampling",
                   tflite="spatial:upsampling" if _r < 3 else None)(_upsampling(_r))  # fmt: skip


@family.declare("Resizing", onnx="spatial:resizing", tflite="spatial:resizing")
@family.declare("CenterCrop")
def _resizing(cfg, shapes):
    s = first(shapes)
    cf = channels_first(cfg)
    spatial, ch = spatial_dims(s, 2, cf)
    return LayerInfo([assemble(s[0], [cfg["height"], cfg["width"]], ch, cf)])
