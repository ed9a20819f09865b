"""KerasHub's building blocks (`keras_hub.layers`) as ONNX, composed from the converters of the Keras
layers they are made of.

A TransformerEncoder is a MultiHeadAttention, two LayerNormalizations and two Dense layers joined by
residual additions; a TransformerDecoder adds a causal mask and, when built with an encoder
sequence, a cross-attention. Each part is written by the converter of its Keras class
(`ctx.dispatch`), given the block's weights that sit under the part's name
(`self_attention_layer/query/kernel` -> the attention's `query/kernel`), so a fix to the attention or
the normalization serves both. What the block's `call` adds itself is written here, as KerasHub's
code computes it (`transformer_layer_utils`): the padding mask `(B, T) -> (B, 1, T)`, combined with
an explicit attention mask by a minimum (a logical and), and the causal mask `i >= j` for queries
`i` and keys `j` over the sequence's own (dynamic) length. Dropout is the identity at inference.
Decoding caches (`self_attention_cache`, ...) and `return_attention_scores` are refused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import TENSOR, Context, Layer, onnx_dtype
from modeltool.exporters.direct.layout import logical

#: call arguments of KerasHub's decoders that carry a decoding cache: a generation loop's state
CACHES = ("self_attention_cache", "self_attention_cache_update_index", "cross_attention_cache",
          "cross_attention_cache_update_index")  # fmt: skip


def position_embedding(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """The first `steps` rows of the table, broadcast to the input's shape (the input itself is
    only measured: KerasHub adds the result to it in the next layer)."""
    if layer.kwargs.get("start_index") not in (None, 0) or "positions" in layer.slots():
        raise layer.refuse("start_index/positions (cached decoding) are not written by the direct route")
    x = logical(ctx, inputs[0])
    shape = ctx.op("Shape", [x])
    rows = _rows(ctx, layer.array("embeddings"), ctx.op("Slice", [shape, ctx.ints([-2]), ctx.ints([-1])]))
    return [Value(ctx.op("Expand", [rows, shape]), x.shape, "float32")]


def token_and_position_embedding(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Token embeddings plus the first `steps` position embeddings; `mask_zero` masks token 0."""
    if layer.kwargs.get("start_index") not in (None, 0) or "positions" in layer.slots():
        raise layer.refuse("start_index/positions (cached decoding) are not written by the direct route")
    ids = logical(ctx, inputs[0])
    index = ids.name if np.dtype(ids.dtype).kind in "iu" else ctx.op("Cast", [ids], to=onnx_dtype("int32"))
    tokens = _part(layer, "token_embedding", "Embedding", {}).array("embeddings").astype(np.float32)
    table = ctx.const(tokens, "token_embedding/embeddings")
    embedded = ctx.op("Gather", [table, index], axis=0)
    steps = ctx.op("Slice", [ctx.op("Shape", [ids]), ctx.ints([-1]), ctx.ints([ids.rank])])
    rows = _rows(ctx, _part(layer, "position_embedding", "PositionEmbedding", {}).array("embeddings"), steps)
    out = Value(ctx.op("Add", [embedded, rows]), (*ids.shape, tokens.shape[1]), "float32")
    if layer.config.get("mask_zero"):
        zero = ctx.const(np.zeros((), np.dtype(ids.dtype)))
        out = out.but(mask=ctx.op("Not", [ctx.op("Equal", [ids, zero])]))
    return [out]


def _rows(ctx: Context, table: np.ndarray, steps: str) -> str:
    """The first `steps` (a 1-element int64 tensor) rows of `table`."""
    return ctx.op("Slice", [ctx.const(table.astype(np.float32), "embeddings"), ctx.ints([0]), steps, ctx.ints([0])])


def transformer_encoder(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Self-attention (padding and attention masks), feed-forward; residuals; LayerNormalization
    after each (`normalize_first=False`, BERT) or before (`True`)."""
    args = _arguments(layer, inputs, ("inputs", "padding_mask", "attention_mask"))
    if layer.kwargs.get("return_attention_scores"):
        raise layer.refuse("return_attention_scores=True is not written by the direct route")
    x = logical(ctx, args["inputs"])
    mask = _padding_and_attention(ctx, x, args.get("padding_mask"), args.get("attention_mask"))
    x = _residual(ctx, layer, x, "self_attention_layer_norm",
                  lambda h: _attend(ctx, layer, "self_attention_layer", h, h, mask))  # fmt: skip
    return [_feedforward(ctx, layer, x)]


def transformer_decoder(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Causal self-attention, cross-attention over the encoder sequence when given, feed-forward;
    residuals and LayerNormalization as in the encoder."""
    names = ("decoder_sequence", "encoder_sequence", "decoder_padding_mask", "decoder_attention_mask",
             "encoder_padding_mask", "encoder_attention_mask")  # fmt: skip
    args = _arguments(layer, inputs, names)
    cached = [c for c in CACHES if layer.kwargs.get(c) is not None]
    if cached:
        raise layer.refuse(f"{', '.join(cached)} (cached decoding) is not written by the direct route")
    x = logical(ctx, args["decoder_sequence"])
    mask = _padding_and_attention(ctx, x, args.get("decoder_padding_mask"), args.get("decoder_attention_mask"))
    if layer.kwargs.get("use_causal_mask", True):
        causal = _causal(ctx, x)
        mask = causal if mask is None else mask.but(name=ctx.op("And", [mask, causal]), shape=(None, None, None))
    x = _residual(ctx, layer, x, "self_attention_layer_norm",
                  lambda h: _attend(ctx, layer, "self_attention", h, h, mask))  # fmt: skip
    encoder = args.get("encoder_sequence")
    if encoder is not None:
        encoder = logical(ctx, encoder)
        cross = _padding_and_attention(ctx, encoder, args.get("encoder_padding_mask"),
                                       args.get("encoder_attention_mask"))  # fmt: skip
        x = _residual(ctx, layer, x, "cross_attention_layer_norm",
                      lambda h: _attend(ctx, layer, "cross_attention", h, encoder, cross))  # fmt: skip
    return [_feedforward(ctx, layer, x)]


# ---------------------------------------------------------------- the parts of a block


def _arguments(layer: Layer, inputs: list[Value], names: tuple[str, ...]) -> dict[str, Value]:
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


def _part(layer: Layer, name: str, cls: str, config: dict[str, Any], args: list[Any] | None = None,
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


def _attend(ctx: Context, layer: Layer, name: str, query: Value, value: Value, mask: Value | None) -> Value:
    heads = int(layer.config["num_heads"])
    dim = int(query.shape[-1])
    if dim % heads:
        raise layer.refuse(f"{dim} features over {heads} heads")
    cfg = {"num_heads": heads, "key_dim": dim // heads, "use_bias": True}
    kwargs = {"attention_mask": TENSOR} if mask is not None else {}
    part = _part(layer, name, "MultiHeadAttention", cfg, [TENSOR, TENSOR], kwargs)
    return ctx.dispatch(part, [query, value] + ([mask] if mask is not None else []))[0]


def _norm(ctx: Context, layer: Layer, name: str, x: Value) -> Value:
    eps = float(layer.config.get("layer_norm_epsilon", 1e-5))
    part = _part(layer, name, "LayerNormalization", {"axis": -1, "epsilon": eps, "center": True, "scale": True})
    return ctx.dispatch(part, [x])[0]


def _dense(ctx: Context, layer: Layer, name: str, x: Value, units: int, activation: Any) -> Value:
    part = _part(layer, name, "Dense", {"units": units, "activation": activation, "use_bias": True})
    return ctx.dispatch(part, [x])[0]


def _residual(ctx: Context, layer: Layer, x: Value, norm: str, body: Any) -> Value:
    """x + body(x), normalized after (`normalize_first=False`) or body's input normalized before."""
    first = bool(layer.config.get("normalize_first", False))
    y = body(_norm(ctx, layer, norm, x) if first else x)
    y = x.but(name=ctx.op("Add", [logical(ctx, y), x]), mask=None)
    return y if first else _norm(ctx, layer, norm, y)


def _feedforward(ctx: Context, layer: Layer, x: Value) -> Value:
    dim = int(x.shape[-1])
    return _residual(ctx, layer, x, "feedforward_layer_norm", lambda h: _dense(
        ctx, layer, "feedforward_output_dense",
        _dense(ctx, layer, "feedforward_intermediate_dense", h, int(layer.config["intermediate_dim"]),
               layer.config.get("activation")), dim, None))  # fmt: skip


# ---------------------------------------------------------------- masks


def _boolean(ctx: Context, v: Value) -> str:
    """A mask as KerasHub reads it: cast to int32 (floats truncate), nonzero is kept."""
    v = logical(ctx, v)
    if v.dtype == "bool":
        return v.name
    as_int = v.name if np.dtype(v.dtype).kind in "iu" else ctx.op("Cast", [v], to=onnx_dtype("int32"))
    return ctx.op("Cast", [as_int], to=onnx_dtype("bool"))


def _padding_and_attention(ctx: Context, x: Value, padding: Value | None, attention: Value | None) -> Value | None:
    """`merge_padding_and_attention_mask`: the padding mask (B, T) as (B, 1, T), and-ed with an
    explicit (B, T, S) attention mask."""
    keep = None
    if padding is not None:
        keep = ctx.unsqueeze(_boolean(ctx, padding), [1])
    if attention is not None:
        explicit = _boolean(ctx, attention)
        keep = explicit if keep is None else ctx.op("And", [keep, explicit])
    return None if keep is None else Value(keep, (x.shape[0], None, None), "bool")


def _causal(ctx: Context, x: Value) -> str:
    """(1, T, T): query i attends to keys j <= i, T the sequence's length at run time."""
    steps = ctx.squeeze(ctx.op("Slice", [ctx.op("Shape", [x]), ctx.ints([1]), ctx.ints([2])]), [0])
    positions = ctx.op("Range", [ctx.const(np.asarray(0, np.int64)), steps, ctx.const(np.asarray(1, np.int64))])
    rows, cols = ctx.unsqueeze(positions, [1]), ctx.unsqueeze(positions, [0])
    return ctx.unsqueeze(ctx.op("GreaterOrEqual", [rows, cols]), [0])
