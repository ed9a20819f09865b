"""Channels-first layers (Keras 1/2 files written for Theano, `data_format='channels_first'`) on a
route that computes channels-last: the input is transposed to channels-last, the layer lowered as
its channels-last twin, and its output transposed back. Between two such layers the transposes
meet and cancel (`passes.cancel_transposes`), so a channels-first network pays one pair at its ends,
as the TFLite converter's own layout pass leaves it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.litert.context import LiteContext

Lowering = Callable[[LiteContext, Layer, list[Value]], list[Value]]


def transpose(ctx: LiteContext, x: Value, perm: list[int]) -> Value:
    return ctx.op("TRANSPOSE", [x, ctx.ints(perm)], tuple(x.shape[p] for p in perm), x.dtype)


def _moved(shape: object, perm: list[int]) -> object:
    if isinstance(shape, (tuple, list)) and len(shape) == len(perm):
        return tuple(shape[p] for p in perm)
    return shape


def channels_first_aware(lowering: Lowering) -> Lowering:
    """`lowering` (written for channels-last) made to take `data_format='channels_first'` too."""

    def lower(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
        x = inputs[0]
        if layer.config.get("data_format") != "channels_first" or x.rank < 3:
            return lowering(ctx, layer, inputs)
        rank = x.rank
        to_last, to_first = [0, *range(2, rank), 1], [0, rank - 1, *range(1, rank - 1)]
        inner = replace(layer, config={**layer.config, "data_format": "channels_last"},
                        out_shapes=[_moved(s, to_last) for s in layer.out_shapes])  # fmt: skip
        outs = lowering(ctx, inner, [transpose(ctx, x, to_last), *inputs[1:]])
        return [transpose(ctx, y, to_first) if y.rank == rank else y for y in outs]

    lower.__doc__ = lowering.__doc__
    return lower


def channels_axis_aware(lowering: Lowering) -> Lowering:
    """`lowering` (written for the last axis) made to take `axis=1` on images and sequences held
    channels-first (BatchNormalization after a channels-first convolution)."""

    def lower(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
        x = inputs[0]
        axis = layer.config.get("axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        if not isinstance(axis, int) or x.rank < 3 or axis % x.rank != 1:
            return lowering(ctx, layer, inputs)
        rank = x.rank
        to_last, to_first = [0, *range(2, rank), 1], [0, rank - 1, *range(1, rank - 1)]
        inner = replace(layer, config={**layer.config, "axis": -1},
                        out_shapes=[_moved(s, to_last) for s in layer.out_shapes])  # fmt: skip
        outs = lowering(ctx, inner, [transpose(ctx, x, to_last)])
        return [transpose(ctx, y, to_first) for y in outs]

    lower.__doc__ = lowering.__doc__
    return lower
