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
    rank = max(v.rank for v in inputs)
    # Keras's merge layers give a lower-rank input axes of 1 after the batch, then broadcast
    inputs = [v if v.rank == rank else ctx.reshape(v, (v.shape[0], *(1,) * (rank - v.rank), *v.shape[1:]))
              for v in inputs]  # fmt: skip
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


def dot(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Keras's batch_dot of two inputs: of vectors, a SUM of the product; of rank-3 tensors, a
    BATCH_MATMUL with the contracted axes moved by its adjoint flags."""
    from modeltool.exporters.litert.normalization import l2_normalized

    if len(inputs) != 2:
        raise layer.refuse(f"Dot of {len(inputs)} inputs")
    a, b = inputs
    axes = layer.config.get("axes", -1)
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    axes = [int(axes[0]) % a.rank, int(axes[1]) % b.rank]
    if layer.config.get("normalize"):
        a, b = l2_normalized(ctx, a, axes[0]), l2_normalized(ctx, b, axes[1])
    shape = out_shape(layer)
    if a.rank == b.rank == 2 and axes == [1, 1]:
        return [ctx.op("SUM", [ctx.binary("MUL", a, b), ctx.ints([1])], shape,
                       opts=options("ReducerOptions", keepDims=True))]  # fmt: skip
    if a.rank == b.rank == 3 and 0 not in axes:
        opts = options("BatchMatMulOptions", adjX=axes[0] == 1, adjY=axes[1] == 2)
        return [ctx.op("BATCH_MATMUL", [a, b], shape, opts=opts)]
    raise layer.refuse(f"a Dot over axes {axes} of ranks {a.rank} and {b.rank}")
