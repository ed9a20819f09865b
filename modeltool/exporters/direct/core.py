"""Core layers: Dense, Embedding, reshaping (Flatten, Reshape, Permute, RepeatVector), Masking,
preprocessing that runs at inference (Rescaling, Normalization), scales (LayerScale,
CustomScaleLayer), Keras 3 operations recorded as layers (`x + 3.0` in MobileNetV3), and the layers
that are identities at inference (dropout, noise and augmentation layers).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.exporters.direct import activations
from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import TENSOR, Context, Layer, onnx_dtype
from modeltool.exporters.direct.layout import (
    broadcast_shape,
    channels_first_perm,
    inverse,
    logical,
    same_order,
    to_perm,
)

#: Keras's backend.epsilon(), the floor of Normalization's standard deviation
EPSILON = 1e-7

#: layers that compute nothing at inference (`training=False`): dropout and noise layers, random
#: augmentation, regularizers; each was checked against Keras in tests/exporters/test_direct_onnx.py
INFERENCE_IDENTITIES = frozenset({
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "ActivityRegularization", "Identity", "RandomFlip", "RandomRotation", "RandomZoom",
    "RandomContrast", "RandomBrightness", "RandomTranslation",
})  # fmt: skip


def identity_layer(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    return [inputs[0]]


def dense(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """x @ kernel + bias over the last axis. A channels-first 3-5-D input is computed as a 1x1
    convolution, which keeps it channels-first (ConvNeXt's pointwise layers)."""
    x = inputs[0]
    kernel = layer.array("kernel").astype(np.float32)
    bias = layer.array("bias").astype(np.float32) if layer.config.get("use_bias", True) and layer.has("bias") else None
    if kernel.ndim != 2:
        raise layer.refuse(f"a kernel of shape {kernel.shape} (quantized or LoRA Dense) is not written directly")
    units = kernel.shape[1]
    shape = (*x.shape[:-1], units)
    if x.rank == 2:
        args = [x.name, ctx.const(kernel, "kernel")]
        name = ctx.op("Gemm", args + [ctx.const(bias, "bias")]) if bias is not None else ctx.op("MatMul", args)
        out = Value(name, shape, "float32")
    elif x.perm is not None and x.perm == channels_first_perm(x.rank):
        w = kernel.T.reshape((units, kernel.shape[0]) + (1,) * (x.rank - 2))
        args = [x.name, ctx.const(w, "kernel")] + ([ctx.const(bias, "bias")] if bias is not None else [])
        out = Value(ctx.op("Conv", args), shape, "float32", x.perm)
    else:
        x = logical(ctx, x)
        name = ctx.op("MatMul", [x, ctx.const(kernel, "kernel")])
        if bias is not None:
            name = ctx.op("Add", [name, ctx.const(bias, "bias")])
        out = Value(name, shape, "float32")
    return [activations.apply(ctx, layer, out.but(mask=inputs[0].mask), layer.config.get("activation"))]


def embedding(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """A row of the table per index (Keras casts float indices to int32 first); `mask_zero`
    gives the mask `index != 0`."""
    x = logical(ctx, inputs[0])
    table = layer.array("embeddings") if layer.has("embeddings") else layer.array("kernel")  # Keras 1: W
    if table.ndim != 2:
        raise layer.refuse(f"an embeddings table of shape {table.shape} is not written directly")
    index = x.name if np.dtype(x.dtype).kind in "iu" else ctx.op("Cast", [x], to=onnx_dtype("int32"))
    out = Value(ctx.op("Gather", [ctx.const(table.astype(np.float32), "embeddings"), index], axis=0),
                (*x.shape, table.shape[1]), "float32")  # fmt: skip
    if layer.config.get("mask_zero"):
        zero = ctx.const(np.zeros((), np.dtype(x.dtype) if np.dtype(x.dtype).kind in "iuf" else np.float32))
        out = out.but(mask=ctx.op("Not", [ctx.op("Equal", [x, zero])]))
    return [out]


def reversible_embedding(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """ReversibleEmbedding called forward is an Embedding (KerasHub's token embeddings); called with
    `reverse=True` (features to logits) it is not written here."""
    if layer.kwargs.get("reverse"):
        raise layer.refuse("reverse=True (features to logits) is not written by the direct route")
    return embedding(ctx, layer, inputs)


def masking(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Steps whose features all equal `mask_value` become 0 and are masked for what follows."""
    x = logical(ctx, inputs[0])
    value = ctx.const(np.float32(layer.config.get("mask_value", 0.0)))
    keep = ctx.op("Not", [ctx.op("Equal", [x, value])])
    keep = ctx.reduce("ReduceMax", ctx.op("Cast", [keep], to=onnx_dtype("float32")), [x.rank - 1], True)
    out = ctx.op("Mul", [x, keep])
    mask = ctx.op("Cast", [ctx.squeeze(keep, [x.rank - 1])], to=onnx_dtype("bool"))
    return [x.but(name=out, mask=mask)]


def flatten(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Everything but the batch axis in one; Keras flattens channels-last order (a channels_first
    Flatten moves its channels last first)."""
    x = inputs[0]
    if layer.config.get("data_format") == "channels_first" and x.rank > 2:
        order: tuple[int, ...] | None = (0, *range(2, x.rank), 1)
        x = to_perm(ctx, x, order)
    else:
        x = logical(ctx, x)
    size = int(np.prod(x.shape[1:])) if all(d is not None for d in x.shape[1:]) else None
    return [Value(ctx.op("Flatten", [x], axis=1), (x.shape[0], size), x.dtype)]


def reshape(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = logical(ctx, inputs[0])
    target = [int(d) for d in layer.config["target_shape"]]
    out = layer.out_shapes[0] if layer.out_shapes and layer.out_shapes[0] is not None else (x.shape[0], *target)
    return [Value(ctx.reshape(x, [0, *target]), tuple(out), x.dtype)]


def permute(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """A change of axis order only: the data stays where it is and the value's `perm` says how it
    is held now (a transpose is written where a later layer needs another order)."""
    x = inputs[0]
    order = (0, *[int(d) for d in layer.config["dims"]])
    held = x.perm or tuple(range(x.rank))
    back = inverse(order)
    perm = tuple(back[p] for p in held)
    shape = tuple(x.shape[o] for o in order)
    return [Value(x.name, shape, x.dtype, None if perm == tuple(range(x.rank)) else perm)]


def repeat_vector(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = logical(ctx, inputs[0])
    n = int(layer.config["n"])
    expanded = ctx.op("Expand", [ctx.unsqueeze(x, [1]), ctx.ints([1, n, 1])])
    return [Value(expanded, (x.shape[0], n, x.shape[1]), x.dtype)]


def rescaling(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """x * scale + offset (scalars, or per channel on the last axis)."""
    x = inputs[0]
    scale, offset = number(layer, "scale", 1.0), number(layer, "offset", 0.0)
    name = x.name
    if not (scale.size == 1 and float(scale) == 1.0):
        name = ctx.op("Mul", [name, activations.per_axis_constant(ctx, x, scale, -1, "scale")])
    if not (offset.size == 1 and float(offset) == 0.0):
        name = ctx.op("Add", [name, activations.per_axis_constant(ctx, x, offset, -1, "offset")])
    return [x.but(name=name)]


def number(layer: Layer, key: str, default: float) -> np.ndarray:
    """A config value that is a number or a list of numbers (or a serialized array) as float32."""
    value = layer.config.get(key, default)
    if isinstance(value, dict):  # a serialized array
        value = value.get("config", {}).get("value", value)
    try:
        return np.asarray(value, np.float32)
    except (TypeError, ValueError):
        raise layer.refuse(f"{key}={value!r} is not a number or a list of numbers") from None


def normalization(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """(x - mean) / max(sqrt(variance), 1e-7), or its inverse, with mean and variance over the kept
    axes (the stored adapted state, or the config's own values)."""
    x = inputs[0]
    keep = layer.config.get("axis", -1)
    keep = [] if keep is None else [int(a) % x.rank for a in (keep if isinstance(keep, (list, tuple)) else [keep])]
    if layer.has("mean"):
        mean, variance = layer.array("mean"), layer.array("variance")
    elif layer.config.get("mean") is not None:
        mean, variance = number(layer, "mean", 0.0), number(layer, "variance", 1.0)
    else:
        raise layer.refuse("neither adapted state nor mean/variance in the config")
    sizes = [x.shape[a] for a in keep]
    if any(d is None for d in sizes) and mean.size != 1:
        raise layer.refuse("the normalized axes have unknown sizes")
    shape = broadcast_shape(x, keep, sizes) if mean.size != 1 else []
    std = np.maximum(np.sqrt(variance.astype(np.float32)), np.float32(EPSILON)).reshape(shape)
    mean = mean.astype(np.float32).reshape(shape)
    if layer.config.get("invert"):
        name = ctx.op("Add", [ctx.const(mean, "mean"), ctx.op("Mul", [x, ctx.const(std, "std")])])
    else:
        name = ctx.op("Div", [ctx.op("Sub", [x, ctx.const(mean, "mean")]), ctx.const(std, "std")])
    return [x.but(name=name)]


def layer_scale(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """ConvNeXt's LayerScale: x * gamma over the last axis."""
    x = inputs[0]
    gamma = layer.arrays()
    if len(gamma) != 1:
        raise layer.refuse(f"expected one weight (gamma), found {len(gamma)}")
    return [x.but(name=ctx.op("Mul", [x, activations.per_axis_constant(ctx, x, gamma[0], -1, "gamma")]))]


def custom_scale(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """InceptionResNetV2's CustomScaleLayer: inputs[0] + inputs[1] * scale."""
    a, b = same_order(ctx, inputs[:2])
    scaled = ctx.op("Mul", [b, ctx.const(np.float32(layer.config.get("scale", 1.0)))])
    return [a.but(name=ctx.op("Add", [a, scaled]))]


# ---------------------------------------------------------------- Keras 3 operations as layers

#: `keras.ops` classes recorded in functional configs (`x + 3.0`) -> ONNX op of two operands
BINARY_OPS = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Divide": "Div", "TrueDivide": "Div",
              "Maximum": "Max", "Minimum": "Min", "Power": "Pow", "Equal": "Equal", "NotEqual": "Equal",
              "Greater": "Greater", "GreaterEqual": "GreaterOrEqual", "Less": "Less", "LessEqual": "LessOrEqual",
              "LogicalAnd": "And", "LogicalOr": "Or"}  # fmt: skip
#: those of them computing a boolean (Keras 3 records a mask as `NotEqual(tokens, 0)`)
BOOLEAN_OPS = {"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd", "LogicalOr"}
UNARY_OPS = {"Negative": "Neg", "Abs": "Abs", "Sqrt": "Sqrt", "Exp": "Exp", "Log": "Log", "Tanh": "Tanh",
             "Sigmoid": "Sigmoid", "Relu": "Relu", "Square": None}  # fmt: skip


def keras_op(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """A `keras.ops` operation applied in a functional model: its tensor and constant arguments as
    the config records them, numpy broadcasting."""
    if layer.kwargs:
        raise layer.refuse(f"keyword arguments {sorted(layer.kwargs)} of keras.ops.{layer.cls} are not written")
    if layer.cls in UNARY_OPS:
        x = inputs[0]
        if layer.cls == "Square":
            return [x.but(name=ctx.op("Mul", [x, x]))]
        return [x.but(name=ctx.op(UNARY_OPS[layer.cls], [x]))]
    args = operands(ctx, layer, inputs)
    if len(args) != 2:
        raise layer.refuse(f"keras.ops.{layer.cls} with {len(args)} operands")
    tensors = [o for o in args if isinstance(o, Value)]
    if len(tensors) == 2 and tensors[0].rank == tensors[1].rank:
        tensors = same_order(ctx, tensors)
    elif len(tensors) == 2 or any(isinstance(o, np.ndarray) and o.size > 1 for o in args):
        tensors = [logical(ctx, t) for t in tensors]
    it = iter(tensors)
    lead = tensors[0]
    names = [next(it).name if isinstance(o, Value) else ctx.const(o.astype(lead.dtype)) for o in args]
    shape = layer.out_shapes[0] if layer.out_shapes and layer.out_shapes[0] is not None else lead.shape
    name = ctx.op(BINARY_OPS[layer.cls], names)
    if layer.cls == "NotEqual":
        name = ctx.op("Not", [name])
    dtype = "bool" if layer.cls in BOOLEAN_OPS else lead.dtype
    return [Value(name, tuple(shape), dtype, lead.perm)]


def keras_reduction(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """`keras.ops.any` / `all` over boolean axes (Keras 3 records Masking's step mask as
    `any(x != mask_value, axis=-1)`): the maximum / minimum of the values as 0/1."""
    x = logical(ctx, inputs[0])
    axis = layer.config.get("axis")
    axes = list(range(x.rank)) if axis is None else [a % x.rank for a in ([axis] if isinstance(axis, int) else axis)]
    keep = bool(layer.config.get("keepdims", False))
    as_int = ctx.op("Cast", [x], to=onnx_dtype("int32"))
    reduced = ctx.reduce("ReduceMax" if layer.cls == "Any" else "ReduceMin", as_int, axes, keep)
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    return [Value(ctx.op("Cast", [reduced], to=onnx_dtype("bool")), shape, "bool")]


def operands(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Any]:
    """The operands of a keras.ops call in config order: the input values and numpy constants."""
    tensors = iter(inputs)
    out: list[Any] = []
    for arg in layer.args:
        if arg is TENSOR:
            out.append(next(tensors))
        elif isinstance(arg, (int, float, list)) and not isinstance(arg, bool):
            out.append(np.asarray(arg, np.float32))
        elif isinstance(arg, dict) and arg.get("class_name") == "__tensor__" and isinstance(arg.get("config"), dict):
            # a constant tensor (Gemma's `x * ops.cast(ops.sqrt(hidden_dim), x.dtype)`)
            out.append(np.asarray(arg["config"].get("value"), np.float32))
        else:
            raise layer.refuse(f"argument {arg!r} of keras.ops.{layer.cls} is not a tensor or a number")
    return out


def get_item(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """`x[...]` in a functional model (`x[:, 0, :]`, KerasHub's pooled first token): each index is a
    slice (a Slice over that axis) or an integer (a Gather that drops the axis)."""
    if len(layer.args) != 2 or layer.args[0] is not TENSOR:
        raise layer.refuse("an index that is not a constant")
    x = logical(ctx, inputs[0])
    index = list(layer.args[1]) if isinstance(layer.args[1], (list, tuple)) else [layer.args[1]]
    if len(index) > x.rank:
        raise layer.refuse(f"{len(index)} indices into a tensor of rank {x.rank}")
    name, shape, axis = x.name, list(x.shape), 0
    for item in index:
        if isinstance(item, dict) and item.get("class_name") == "__slice__":
            cfg = item.get("config") or {}
            start, stop, step = cfg.get("start"), cfg.get("stop"), cfg.get("step")
            if (start, stop, step) != (None, None, None):
                step = 1 if step is None else int(step)
                lo = (0 if step > 0 else -1) if start is None else int(start)
                hi = (np.iinfo(np.int64).max if step > 0 else np.iinfo(np.int64).min) if stop is None else int(stop)
                name = ctx.op("Slice", [name, ctx.ints([lo]), ctx.ints([hi]), ctx.ints([axis]), ctx.ints([step])])
                size = shape[axis]
                shape[axis] = None if size is None else len(range(*slice(start, stop, step).indices(size)))
            axis += 1
        elif isinstance(item, int) and not isinstance(item, bool):
            name = ctx.op("Gather", [name, ctx.const(np.asarray(item, np.int64))], axis=axis)
            del shape[axis]
        else:
            raise layer.refuse(f"index {item!r} (only slices and integers are written)")
    return [Value(name, tuple(shape), x.dtype)]
