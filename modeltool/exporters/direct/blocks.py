"""The parts KerasHub's blocks are made of, written by the converters of their Keras classes, and
the masks the blocks compute themselves.

A TransformerEncoder is a MultiHeadAttention, two LayerNormalizations and two Dense layers joined by
residual additions: each part is written by the converter of its Keras class (`call`, through
`ctx.dispatch`), given the block's weights that sit under the part's name
(`self_attention_layer/query/kernel` -> the attention's `query/kernel`), so a fix to the attention or
the normalization serves every block. The masks are what KerasHub's `transformer_layer_utils`
computes: the padding mask `(B, T) -> (B, 1, T)`, and-ed with an explicit attention mask, and the
causal mask `i >= j` over the sequence's run-time length (and a sliding window where set).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import TENSOR, Context, Layer, onnx_dtype
from modeltool.exporters.direct.layout import logical
from modeltool.keras import layers as keras_layers

#: call arguments of KerasHub's decoders that carry a decoding cache: a generation loop's state
CACHES = ("self_attention_cache", "self_attention_cache_update_index", "cross_attention_cache",
          "cross_attention_cache_update_index")  # fmt: skip


def arguments(layer: Layer, inputs: list[Value], names: tuple[str, ...]) -> dict[str, Value]:
    """The call's tensors by parameter name (positional ones named by `names`, in order)."""
    out: dict[str, Value] = {}
    for slot, value in zip(layer.slots(), inputs):
        if slot.startswith("arg") and slot[3:].isdigit() and int(slot[3:]) < len(names):
            slot = names[int(slot[3:])]
        if slot not in names:
            raise layer.refuse(f"the call argument {slot!r} is not written by the direct route")
        out[slot] = value
    if names[0] not in out:
        raise layer.refuse("no input sequence in the call")
    first = out[names[0]]
    if first.rank != 3 or first.shape[-1] is None:
        raise layer.refuse(f"an input of shape {first.shape} (a (batch, steps, features) sequence is written)")
    if first.mask is not None and len(names) > 2 and names[2] not in out:
        out[names[2]] = Value(first.mask, first.shape[:2], "bool")  # Keras's own mask stands in for padding
    return out


def sub_layer(layer: Layer, name: str, cls: str, config: dict[str, Any], args: list[Any] | None = None,
          kwargs: dict[str, Any] | None = None) -> Layer:  # fmt: skip
    """The sub-layer `name` of a block, with the block's weights under that name (roles relative to it)."""
    weights = []
    for w in layer.weights:
        full = "/" + w.name
        at = full.find(f"/{name}/")
        if at >= 0:
            weights.append(replace(w, role=full[at + len(name) + 2 :]))
    return Layer(f"{layer.path}/{name}", f"{layer.weights_path}/{name}", cls, config, layer.generation, weights,
                 [], args or [TENSOR], kwargs or {}, "keras.layers")  # fmt: skip


def call(ctx: Context, part: Layer, inputs: list[Value]) -> list[Value]:
    """One part of a block written by its Keras class's converter, its output shapes sized as the
    walk sizes a layer (some converters need them)."""
    info = keras_layers.infer(part.cls, part.config, [v.shape for v in inputs], part.module)
    if info is not None and info.output_shapes != [None]:
        part.out_shapes = list(info.output_shapes)
    return ctx.dispatch(part, inputs)


def attend(ctx: Context, layer: Layer, name: str, query: Value, value: Value, mask: Value | None) -> Value:
    heads = int(layer.config["num_heads"])
    dim = int(query.shape[-1])
    if dim % heads:
        raise layer.refuse(f"{dim} features over {heads} heads")
    cfg = {"num_heads": heads, "key_dim": dim // heads, "use_bias": True, "dropout": layer.config.get("dropout", 0)}
    kwargs = {"attention_mask": TENSOR} if mask is not None else {}
    part = sub_layer(layer, name, "MultiHeadAttention", cfg, [TENSOR, TENSOR], kwargs)
    return call(ctx, part, [query, value] + ([mask] if mask is not None else []))[0]


def norm(ctx: Context, layer: Layer, name: str, x: Value) -> Value:
    eps = float(layer.config.get("layer_norm_epsilon", 1e-5))
    part = sub_layer(layer, name, "LayerNormalization", {"axis": -1, "epsilon": eps, "center": True, "scale": True})
    return call(ctx, part, [x])[0]


def dense(ctx: Context, layer: Layer, name: str, x: Value, units: int | None, activation: Any) -> Value:
    part = sub_layer(layer, name, "Dense", {"units": units, "activation": activation, "use_bias": True})
    return call(ctx, part, [x])[0]


def rms(ctx: Context, x: str, eps: float, scale: np.ndarray) -> str:
    square = ctx.reduce("ReduceMean", ctx.op("Mul", [x, x]), [-1], True)
    inv = ctx.op("Reciprocal", [ctx.op("Sqrt", [ctx.op("Add", [square, ctx.const(np.float32(eps))])])])
    return ctx.op("Mul", [ctx.op("Mul", [x, inv]), ctx.const(scale.astype(np.float32).reshape(-1), "scale")])


def residual(ctx: Context, layer: Layer, x: Value, norm_name: str, body: Any) -> Value:
    """x + body(x), normalized after (`normalize_first=False`) or body's input normalized before."""
    first = bool(layer.config.get("normalize_first", False))
    y = body(norm(ctx, layer, norm_name, x) if first else x)
    y = x.but(name=ctx.op("Add", [logical(ctx, y), x]), mask=None)
    return y if first else norm(ctx, layer, norm_name, y)


def feedforward(ctx: Context, layer: Layer, x: Value) -> Value:
    dim = int(x.shape[-1])
    return residual(ctx, layer, x, "feedforward_layer_norm", lambda h: dense(
        ctx, layer, "feedforward_output_dense",
        dense(ctx, layer, "feedforward_intermediate_dense", h, int(layer.config["intermediate_dim"]),
               layer.config.get("activation")), dim, None))  # fmt: skip


# ---------------------------------------------------------------- masks


def boolean(ctx: Context, v: Value) -> str:
    """A mask as KerasHub reads it: cast to int32 (floats truncate), nonzero is kept."""
    v = logical(ctx, v)
    if v.dtype == "bool":
        return v.name
    as_int = v.name if np.dtype(v.dtype).kind in "iu" else ctx.op("Cast", [v], to=onnx_dtype("int32"))
    return ctx.op("Cast", [as_int], to=onnx_dtype("bool"))


def padding_and_attention(ctx: Context, x: Value, padding: Value | None, attention: Value | None) -> Value | None:
    """`merge_padding_and_attention_mask`: the padding mask (B, T) as (B, 1, T), and-ed with an
    explicit (B, T, S) attention mask."""
    keep = None
    if padding is not None:
        keep = ctx.unsqueeze(boolean(ctx, padding), [1])
    if attention is not None:
        explicit = boolean(ctx, attention)
        keep = explicit if keep is None else ctx.op("And", [keep, explicit])
    return None if keep is None else Value(keep, (x.shape[0], None, None), "bool")


def causal_mask(ctx: Context, x: Value, window: int | None = None) -> str:
    """(1, T, T): query i attends to keys j <= i (and, with a sliding `window`, j > i - window), T
    the sequence's length at run time."""
    steps = ctx.squeeze(ctx.op("Slice", [ctx.op("Shape", [x]), ctx.ints([1]), ctx.ints([2])]), [0])
    positions = ctx.op("Range", [ctx.const(np.asarray(0, np.int64)), steps, ctx.const(np.asarray(1, np.int64))])
    rows, cols = ctx.unsqueeze(positions, [1]), ctx.unsqueeze(positions, [0])
    keep = ctx.op("GreaterOrEqual", [rows, cols])
    if window is not None:
        shifted = ctx.op("Add", [cols, ctx.const(np.asarray(int(window), np.int64))])
        keep = ctx.op("And", [keep, ctx.op("Less", [rows, shifted])])
    return ctx.unsqueeze(keep, [0])
