"""Merge layers as TFLite ops: ADD / SUB / MUL / MAXIMUM / MINIMUM chained over the inputs (Average
is their sum times 1/n), CONCATENATION along Keras's axis."""

from __future__ import annotations

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.litert.context import LiteContext, options
from modeltool.exporters.litert.core import out_shape

OPS = {"Add": "ADD", "Subtract": "SUB", "Multiply": "MUL", "Average": "ADD", "Maximum": "MAXIMUM",
       "Minimum": "MINIMUM"}  # fmt: skip


def elementwise(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    if any(v.mask is not None for v in inputs):
        raise layer.refuse("masked inputs are not lowered")
    shape = out_shape(layer)
    op = OPS[layer.cls]
    out = inputs[0]
    for other in inputs[1:]:
        out = ctx.binary(op, out, other, shape)
    if layer.cls == "Average":
        out = ctx.binary("MUL", out, ctx.scalar(1.0 / len(inputs)), shape)
    return [out]


def concatenate(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    if any(v.mask is not None for v in inputs):
        raise layer.refuse("masked inputs are not lowered")
    axis = int(layer.config.get("axis", -1)) % inputs[0].rank
    return [ctx.op("CONCATENATION", list(inputs), out_shape(layer), inputs[0].dtype,
                   options("ConcatenationOptions", axis=axis))]  # fmt: skip
