"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot.

As Keras computes them: inputs of lower rank get axes inserted at position 1 until the ranks match
(then numpy broadcasting), Average divides the sum by the count, Dot is `batch_dot` over the given
axes (inputs L2-normalized first with `normalize=True`, Keras's `x * min(rsqrt(sum(x^2)), 1e7)`). The
inputs are brought to one axis order, the one most of them already have; a concatenation happens
along wherever that order holds the axis.
"""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context, Layer
from modeltool.exporters.direct.layout import logical, same_order

ELEMENTWISE = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Maximum": "Max", "Minimum": "Min"}
#: Keras's backend.epsilon(), the norm floor of Dot(normalize=True)
EPSILON = 1e-7


def _ranked(ctx: Context, inputs: list[Value]) -> list[Value]:
    """Keras's rank matching: axes inserted at 1 (in Keras's own order) until every rank is the largest."""
    top = max(v.rank for v in inputs)
    out = []
    for v in inputs:
        if v.rank < top:
            v = logical(ctx, v)
            missing = top - v.rank
            v = Value(ctx.unsqueeze(v, list(range(1, 1 + missing))), (v.shape[0], *([1] * missing), *v.shape[1:]),
                      v.dtype, None, v.mask)  # fmt: skip
        out.append(v)
    return same_order(ctx, out)


def _mask(ctx: Context, inputs: list[Value]) -> str | None:
    """Merged masks: a step is kept when every input keeps it (Keras's `all` over the masks)."""
    masks = [v.mask for v in inputs if v.mask is not None]
    if not masks:
        return None
    out = masks[0]
    for m in masks[1:]:
        out = ctx.op("And", [out, m])
    return out


def _shape(layer: Layer, values: list[Value]) -> tuple:
    if layer.out_shapes and layer.out_shapes[0] is not None:
        return tuple(layer.out_shapes[0])
    return values[0].shape


def elementwise(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    values = _ranked(ctx, inputs)
    if layer.cls == "Subtract" and len(values) != 2:
        raise layer.refuse(f"Subtract of {len(values)} inputs")
    op = ELEMENTWISE.get(layer.cls, "Add")
    if op in ("Max", "Min") or (op == "Add" and len(values) > 2):
        name = ctx.op("Sum" if op == "Add" else op, values)
    else:
        name = values[0].name
        for v in values[1:]:
            name = ctx.op(op, [name, v.name])
    if layer.cls == "Average":
        name = ctx.op("Div", [name, ctx.const(np.float32(len(values)))])
    lead = values[0]
    return [Value(name, _shape(layer, values), lead.dtype, lead.perm, _mask(ctx, inputs))]


def concatenate(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    values = same_order(ctx, inputs)
    lead = values[0]
    axis = lead.axis(int(layer.config.get("axis", -1)))
    name = ctx.op("Concat", values, axis=axis)
    mask = None
    if any(v.mask is not None for v in inputs):
        raise layer.refuse("concatenating masked tensors is not written by the direct route")
    return [Value(name, _shape(layer, values), lead.dtype, lead.perm, mask)]


def dot(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Keras's batch_dot of two inputs as one Einsum."""
    if len(inputs) != 2:
        raise layer.refuse(f"Dot of {len(inputs)} inputs")
    a, b = (logical(ctx, v) for v in inputs)
    axes = layer.config.get("axes", -1)
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    axes = [int(axes[0]) % a.rank, int(axes[1]) % b.rank]
    if 0 in axes:
        raise layer.refuse("a Dot over the batch axis")
    if layer.config.get("normalize"):
        a, b = _l2(ctx, a, axes[0]), _l2(ctx, b, axes[1])
    letters = iter("bcdefghijklmnopqrstuvwxyz")
    left = ["a"] + [next(letters) for _ in range(a.rank - 1)]
    right = ["a"] + [next(letters) for _ in range(b.rank - 1)]
    right[axes[1]] = left[axes[0]]
    out = ["a"] + [c for i, c in enumerate(left) if i not in (0, axes[0])]
    out += [c for i, c in enumerate(right) if i not in (0, axes[1])]
    name = ctx.op("Einsum", [a, b], equation=f"{''.join(left)},{''.join(right)}->{''.join(out)}")
    if len(out) == 1:
        name = ctx.unsqueeze(name, [1])
    return [Value(name, _shape(layer, [a, b]), a.dtype)]


def _l2(ctx: Context, x: Value, axis: int) -> Value:
    square = ctx.reduce("ReduceSum", ctx.op("Mul", [x, x]), [axis], True)
    inv = ctx.op("Min", [ctx.op("Reciprocal", [ctx.op("Sqrt", [square])]), ctx.const(np.float32(1.0 / EPSILON))])
    return x.but(name=ctx.op("Mul", [x, inv]))
