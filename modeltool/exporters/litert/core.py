"""Core layers as TFLite ops: Dense (FULLY_CONNECTED), Embedding (GATHER), the reshaping layers,
Rescaling, and the layers that pass their input through at inference."""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.direct.core import number
from modeltool.exporters.litert import activations
from modeltool.exporters.litert.context import BINARY_OPTIONS, LiteContext, options
from modeltool.exporters.litert.layout import channels_first_aware


def identity_layer(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    return [inputs[0]]


def out_shape(layer: Layer) -> tuple:
    if not layer.out_shapes or layer.out_shapes[0] is None:
        raise layer.refuse("output shape unknown")
    return tuple(layer.out_shapes[0])


def dense(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """FULLY_CONNECTED over the last axis (`keep_num_dims` for inputs of rank 3 and more)."""
    x = inputs[0]
    kernel = layer.array("kernel").astype(np.float32)
    if kernel.ndim != 2:
        raise layer.refuse(f"a kernel of shape {kernel.shape} (quantized or LoRA Dense) is not lowered")
    units = kernel.shape[1]
    use_bias = layer.config.get("use_bias", True) and layer.has("bias")
    bias = layer.array("bias").astype(np.float32).reshape(-1) if use_bias else np.zeros(units, np.float32)
    opts = options("FullyConnectedOptions", keepNumDims=x.rank > 2)
    out = ctx.op("FULLY_CONNECTED", [x, ctx.const(np.ascontiguousarray(kernel.T), "kernel"), ctx.const(bias, "bias")],
                 (*x.shape[:-1], units), opts=opts)  # fmt: skip
    return [activations.apply(ctx, layer, out, layer.config.get("activation"))]


def embedding(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """A row of the table per index (Keras casts float indices to int32 first); `mask_zero` gives
    the mask `index != 0` for the layers after it."""
    x = inputs[0]
    table = layer.array("embeddings") if layer.has("embeddings") else layer.array("kernel")
    if table.ndim != 2:
        raise layer.refuse(f"an embeddings table of shape {table.shape} is not lowered")
    index = x if np.dtype(x.dtype).kind in "iu" and x.dtype == "int32" else ctx.op("CAST", [x], x.shape, "int32")
    out = ctx.op("GATHER", [ctx.const(table.astype(np.float32), "embeddings"), index], (*x.shape, table.shape[1]),
                 opts=options("GatherOptions", axis=0, batchDims=0))  # fmt: skip
    if layer.config.get("mask_zero"):
        mask = ctx.op("NOT_EQUAL", [index, ctx.const(np.int32(0), "zero")], x.shape, "bool")
        out = out.but(mask=mask.name)
    return [out]


def masking(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Steps whose features all equal `mask_value` become 0 and are masked for what follows."""
    x = inputs[0]
    differs = ctx.op("NOT_EQUAL", [x, ctx.scalar(float(layer.config.get("mask_value", 0.0)))], x.shape, "bool")
    keep = ctx.op("REDUCE_MAX", [ctx.op("CAST", [differs], x.shape), ctx.ints([x.rank - 1])], (*x.shape[:-1], 1),
                  opts=options("ReducerOptions", keepDims=True))  # fmt: skip
    mask = ctx.op("CAST", [ctx.reshape(keep, x.shape[:-1])], x.shape[:-1], "bool")
    return [ctx.binary("MUL", x, keep, x.shape).but(mask=mask.name)]


@channels_first_aware
def flatten(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    if any(d is None for d in x.shape[1:]):
        raise layer.refuse("flattening dims of unknown size")
    return [ctx.reshape(x, (x.shape[0], int(np.prod(x.shape[1:]))))]


def reshape(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    shape = out_shape(layer)
    if any(d is None for d in shape[1:]):
        raise layer.refuse(f"a target shape {shape} with dims of unknown size")
    return [ctx.reshape(inputs[0], shape)]


def permute(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    order = [0, *[int(d) for d in layer.config["dims"]]]
    return [ctx.op("TRANSPOSE", [x, ctx.ints(order)], tuple(x.shape[o] for o in order), x.dtype)]


def repeat_vector(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    n = int(layer.config["n"])
    expanded = ctx.reshape(x, (x.shape[0], 1, x.shape[1]))
    return [ctx.op("TILE", [expanded, ctx.ints([1, n, 1])], (x.shape[0], n, x.shape[1]), x.dtype)]


def rescaling(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """x * scale + offset (scalars, or per channel on the last axis)."""
    x = inputs[0]
    scale, offset = number(layer, "scale", 1.0), number(layer, "offset", 0.0)
    if not (scale.size == 1 and float(scale.reshape(-1)[0]) == 1.0):
        x = ctx.binary("MUL", x, ctx.const(scale.reshape(-1) if scale.size > 1 else scale.reshape(()), "scale"))
    if not (offset.size == 1 and float(offset.reshape(-1)[0]) == 0.0):
        x = ctx.binary("ADD", x, ctx.const(offset.reshape(-1) if offset.size > 1 else offset.reshape(()), "offset"))
    return [x]


def layer_scale(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """ConvNeXt's LayerScale: x * gamma over the last axis."""
    gamma = layer.arrays()
    if len(gamma) != 1:
        raise layer.refuse(f"expected one weight (gamma), found {len(gamma)}")
    return [ctx.binary("MUL", inputs[0], ctx.const(gamma[0].astype(np.float32).reshape(-1), "gamma"))]


def custom_scale(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """InceptionResNetV2's CustomScaleLayer: inputs[0] + inputs[1] * scale."""
    a, b = inputs[:2]
    scaled = ctx.binary("MUL", b, ctx.scalar(float(layer.config.get("scale", 1.0))))
    return [ctx.binary("ADD", a, scaled, broadcast(a.shape, b.shape))]


# ---------------------------------------------------------------- Keras 3 operations as layers

#: `keras.ops` classes recorded in functional configs (`x + 3.0`) -> TFLite op of two operands
BINARY_OPS = {"Add": "ADD", "Subtract": "SUB", "Multiply": "MUL", "Divide": "DIV", "TrueDivide": "DIV",
              "Maximum": "MAXIMUM", "Minimum": "MINIMUM", "Power": "POW", "Equal": "EQUAL", "NotEqual": "NOT_EQUAL",
              "Greater": "GREATER", "GreaterEqual": "GREATER_EQUAL", "Less": "LESS", "LessEqual": "LESS_EQUAL",
              "LogicalAnd": "LOGICAL_AND", "LogicalOr": "LOGICAL_OR"}  # fmt: skip
#: those of them computing a boolean (Keras 3 records a mask as `NotEqual(tokens, 0)`)
BOOLEAN_OPS = {"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd", "LogicalOr"}
UNARY_OPS = {"Negative": "NEG", "Abs": "ABS", "Sqrt": "SQRT", "Exp": "EXP", "Log": "LOG", "Tanh": "TANH",
             "Sigmoid": "LOGISTIC", "Relu": "RELU", "Square": "SQUARE"}  # fmt: skip


def broadcast(a: tuple, b: tuple) -> tuple:
    """numpy's broadcast of two shapes (None: unknown until run time)."""
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    return tuple(y if x == 1 else x if y == 1 else (x if x is not None else y) for x, y in zip(a, b))


def keras_op(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """A `keras.ops` operation applied in a functional model, numpy broadcasting."""
    from modeltool.exporters.direct.core import operands

    if layer.kwargs:
        raise layer.refuse(f"keyword arguments {sorted(layer.kwargs)} of keras.ops.{layer.cls} are not lowered")
    if layer.cls in UNARY_OPS:
        return [ctx.unary(UNARY_OPS[layer.cls], inputs[0])]
    if layer.cls not in BINARY_OPS:
        raise layer.refuse(f"keras.ops.{layer.cls} is not lowered")
    args = operands(ctx, layer, inputs)  # type: ignore[arg-type]
    if len(args) != 2:
        raise layer.refuse(f"keras.ops.{layer.cls} with {len(args)} operands")
    tensors = [a for a in args if isinstance(a, Value)]
    first = tensors[0]
    refs = [a if isinstance(a, Value) else ctx.const(np.asarray(a).astype(first.dtype), "operand") for a in args]
    shapes = [a.shape if isinstance(a, Value) else tuple(np.shape(a)) for a in args]
    op = BINARY_OPS[layer.cls]
    opts = options(op.title() + "Options") if op in BINARY_OPTIONS else None
    return [ctx.op(op, refs, broadcast(*shapes), "bool" if layer.cls in BOOLEAN_OPS else first.dtype, opts)]


def keras_reduction(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """`keras.ops.any` / `all` over boolean axes (Keras 3 records Masking's step mask as
    `any(x != mask_value, axis=-1)`): REDUCE_ANY, or REDUCE_ALL."""
    x = inputs[0]
    axis = layer.config.get("axis")
    axes = list(range(x.rank)) if axis is None else [a % x.rank for a in ([axis] if isinstance(axis, int) else axis)]
    keep = bool(layer.config.get("keepdims", False))
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    value = x if x.dtype == "bool" else ctx.op("NOT_EQUAL", [x, ctx.const(np.zeros((), x.dtype), "zero")], x.shape,
                                                "bool")  # fmt: skip
    op = "REDUCE_ANY" if layer.cls == "Any" else "REDUCE_ALL"
    return [ctx.op(op, [value, ctx.ints(axes)], shape, "bool", options("ReducerOptions", keepDims=keep))]


def get_item(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    """`x[...]` in a functional model (`x[:, 0, :]`, a pooled first token): one STRIDED_SLICE, each
    index a slice over its axis or an integer that drops it (shrink mask)."""
    from modeltool.exporters.direct.context import TENSOR

    if len(layer.args) != 2 or layer.args[0] is not TENSOR:
        raise layer.refuse("an index that is not a constant")
    x = inputs[0]
    index = list(layer.args[1]) if isinstance(layer.args[1], (list, tuple)) else [layer.args[1]]
    if len(index) > x.rank:
        raise layer.refuse(f"{len(index)} indices into a tensor of rank {x.rank}")
    begin, end, strides = [0] * x.rank, [0] * x.rank, [1] * x.rank
    begin_mask = end_mask = shrink = 0
    shape: list = []
    for axis, size in enumerate(x.shape):
        item = index[axis] if axis < len(index) else {"class_name": "__slice__", "config": {}}
        if isinstance(item, dict) and item.get("class_name") == "__slice__":
            cfg = item.get("config") or {}
            start, stop, step = cfg.get("start"), cfg.get("stop"), cfg.get("step")
            strides[axis] = 1 if step is None else int(step)
            if start is None:
                begin_mask |= 1 << axis
            else:
                begin[axis] = int(start)
            if stop is None:
                end_mask |= 1 << axis
            else:
                end[axis] = int(stop)
            shape.append(None if size is None else len(range(*slice(start, stop, step).indices(size))))
        elif isinstance(item, int) and not isinstance(item, bool):
            begin[axis], shrink = int(item), shrink | 1 << axis
            if item == -1:
                end_mask |= 1 << axis
            else:
                end[axis] = int(item) + 1
        else:
            raise layer.refuse(f"index {item!r} (only slices and integers are lowered)")
    opts = options("StridedSliceOptions", beginMask=begin_mask, endMask=end_mask, shrinkAxisMask=shrink)
    return [ctx.op("STRIDED_SLICE", [x, ctx.ints(begin), ctx.ints(end), ctx.ints(strides)], tuple(shape), x.dtype,
                   opts)]  # fmt: skip
