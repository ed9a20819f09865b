"""Axis orders: moving a value between Keras's order and the channels-first order ONNX computes in.

`to_perm` is the one place a Transpose is written. It writes none when the value already has the
order asked for, composes with a Transpose that produced the value (two transposes become one, or
none when they cancel), and writes a Reshape instead when only axes of size 1 move (the data order is
then unchanged: an SE block's (N, 1, 1, C) held as (N, C, 1, 1)).
"""

from __future__ import annotations

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def channels_first_perm(rank: int) -> tuple[int, ...]:
    """Physical order of a channels-last value held channels-first: (0, C, spatial...)."""
    return (0, rank - 1, *range(1, rank - 1))


def inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def to_perm(ctx: Context, v: Value, perm: tuple[int, ...] | None) -> Value:
    """`v` held in physical order `perm` (None: Keras's own order)."""
    current = v.perm or identity(v.rank)
    target = perm or identity(v.rank)
    if current == target:
        return v
    inv = inverse(current)
    move = tuple(inv[target[i]] for i in range(v.rank))  # new physical i = old physical move[i]
    out_perm = None if target == identity(v.rank) else target
    name = _reshape_if_singletons(ctx, v, move)
    if name is None:
        source, composed = v.name, move
        node = ctx.builder.producer.get(v.name)
        if node is not None and node.op_type == "Transpose":
            first = tuple(next(a.ints for a in node.attribute if a.name == "perm"))
            source, composed = node.input[0], tuple(first[m] for m in move)
        name = source if composed == identity(v.rank) else ctx.op("Transpose", [source], perm=list(composed))
    return v.but(name=name, perm=out_perm)


def _reshape_if_singletons(ctx: Context, v: Value, move: tuple[int, ...]) -> str | None:
    """A Reshape doing what the transpose `move` does, when only size-1 axes move; else None."""
    shape = v.physical_shape
    big = [m for m in move if shape[m] != 1]
    if big != sorted(big):
        return None
    dims, free = [], 0
    for i, m in enumerate(move):
        d = shape[m]
        if d is not None:
            dims.append(int(d))
        elif m == i:
            dims.append(0)
        else:
            dims.append(-1)
            free += 1
    if free > 1:
        return None
    node = ctx.builder.producer.get(v.name)
    if node is not None and node.op_type == "Reshape" and 0 not in dims:
        return ctx.reshape(node.input[0], dims)  # one Reshape instead of two
    return ctx.reshape(v, dims)


def logical(ctx: Context, v: Value) -> Value:
    """`v` in Keras's own axis order."""
    return to_perm(ctx, v, None)


def channels_first(ctx: Context, v: Value, data_format: str | None) -> Value:
    """`v` held (N, C, spatial...): what ONNX convolutions, pooling and resizing compute on. A
    channels_first Keras layer already sees its data that way."""
    if data_format == "channels_first":
        return logical(ctx, v)
    return to_perm(ctx, v, channels_first_perm(v.rank))


def same_order(ctx: Context, values: list[Value]) -> list[Value]:
    """Values of one rank held in one order, for an elementwise op or a concatenation: the order most
    of them already have (so the fewest transposes are written), the first one's on a tie."""
    orders = [v.perm for v in values]
    best = max(orders, key=lambda p: (orders.count(p), -orders.index(p)))
    return [to_perm(ctx, v, best) for v in values]


def broadcast_shape(v: Value, axes: list[int], sizes: list[int]) -> list[int]:
    """The physical shape of a constant varying along the logical `axes` of `v` (sizes given) and
    broadcast over every other axis: a per-channel scale for a value held in any order."""
    shape = [1] * v.rank
    for axis, size in zip(axes, sizes):
        shape[v.axis(axis)] = size
    return shape
