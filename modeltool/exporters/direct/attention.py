"""MultiHeadAttention over (batch, steps, features) inputs, as Keras computes it:

    q, k, v = the query/key/value projections, split into heads (their EinsumDense kernels)
    scores  = softmax(q k^T / sqrt(key_dim))   (masked positions as the writer's Keras treats them)
    output  = the output projection of (scores v), heads joined

The 1/sqrt(key_dim) scale is folded into the query projection. `attention_mask`,
`use_causal_mask` and `return_attention_scores` of the call are honoured; masks carried by the inputs
(Embedding(mask_zero=True)), custom `attention_axes` and non-default `output_shape` are refused.
"""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context, Layer, onnx_dtype
from modeltool.exporters.direct.layout import logical

#: what Keras's masked softmax puts in masked positions (float32)
LARGE_NEGATIVE = -1e9


def attention_inputs(layer: Layer, inputs: list[Value]) -> tuple[Value, Value, Value, Value | None]:
    """(query, value, key, attention mask or None) of a MultiHeadAttention call, refused where the
    call asks for what neither direct route writes (masks carried by the inputs, other axes)."""
    cfg = layer.config
    by_slot = dict(zip(layer.slots(), inputs))
    query = by_slot.get("arg0") or by_slot.get("query")
    value = by_slot.get("arg1") or by_slot.get("value")
    key = by_slot.get("arg2") or by_slot.get("key") or value
    if query is None or value is None or key is None or len(by_slot) != len(inputs):
        raise layer.refuse("cannot tell query, value and key apart in the call")
    masked = sorted(set(by_slot) & {"query_mask", "value_mask", "key_mask"})
    if masked:
        raise layer.refuse(f"{'/'.join(masked)} (masks carried by the inputs) are not written by the direct route")
    if cfg.get("sliding_window") is not None:
        raise layer.refuse(f"sliding_window={cfg.get('sliding_window')!r}")
    if cfg.get("attention_axes") not in (None, [1], (1,), 1):
        raise layer.refuse(f"attention_axes={cfg.get('attention_axes')!r}")
    if any(v.mask is not None for v in (query, value, key)):
        raise layer.refuse("inputs carrying a mask (Embedding(mask_zero=True)/Masking)")
    return query, value, key, by_slot.get("attention_mask")


def zero_masked_queries(layer: Layer) -> bool:
    """Keras 3 runs its fused dot_product_attention (a query with every key masked averages all
    values) unless dropout is set, then its Softmax layer (such a query gets zeros)."""
    return layer.generation >= 3 and float(layer.config.get("dropout") or 0.0) > 0.0


def multi_head_attention(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    query, value, key, mask = attention_inputs(layer, inputs)
    query, value, key = (logical(ctx, v) for v in (query, value, key))
    if query.rank != 3 or value.rank != 3:
        raise layer.refuse("inputs of rank other than 3")
    heads, key_dim = int(cfg["num_heads"]), int(cfg["key_dim"])
    value_dim = int(cfg.get("value_dim") or key_dim)
    scale = np.float32(1.0 / np.sqrt(float(key_dim)))
    q = _project(ctx, layer, query, "query", heads, key_dim, scale)
    k = _project(ctx, layer, key, "key", heads, key_dim, np.float32(1.0))
    v = _project(ctx, layer, value, "value", heads, value_dim, np.float32(1.0))
    q = ctx.op("Transpose", [q], perm=[0, 2, 1, 3])  # (B, H, T, K)
    k = ctx.op("Transpose", [k], perm=[0, 2, 3, 1])  # (B, H, K, S)
    v = ctx.op("Transpose", [v], perm=[0, 2, 1, 3])  # (B, H, S, V)
    scores = ctx.op("MatMul", [q, k])
    keep = _mask(ctx, layer, mask, query.shape[1], key.shape[1])
    probs = masked_softmax(ctx, scores, keep, layer.generation, zero_masked=zero_masked_queries(layer))
    joined = ctx.op("Transpose", [ctx.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    joined = ctx.reshape(joined, [0, 0, heads * value_dim])
    out_kernel = weight(layer, "attention_output/kernel")
    if out_kernel.ndim != 3:
        raise layer.refuse(f"an output projection of shape {out_kernel.shape} (output_shape set)")
    out = ctx.op("MatMul", [joined, ctx.const(out_kernel.reshape(heads * value_dim, -1), "attention_output/kernel")])
    if cfg.get("use_bias", True):
        bias = weight(layer, "attention_output/bias").reshape(-1)
        out = ctx.op("Add", [out, ctx.const(bias, "attention_output/bias")])
    result = [Value(out, (query.shape[0], query.shape[1], out_kernel.shape[-1]), "float32")]
    if layer.kwargs.get("return_attention_scores"):
        result.append(Value(probs, (query.shape[0], heads, query.shape[1], key.shape[1]), "float32"))
    return result


def cached_multi_head_attention(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """KerasHub's CachedMultiHeadAttention called without a cache is Keras's MultiHeadAttention with
    its attention mask as given (it computes no masks of its own from the inputs)."""
    cached = [k for k in ("cache", "cache_update_index") if layer.kwargs.get(k) is not None]
    if cached:
        raise layer.refuse(f"{', '.join(cached)} (cached decoding) is not written by the direct route")
    return multi_head_attention(ctx, layer, inputs)


def masked_softmax(ctx: Context, scores: str, keep: Value | None, generation: int, *, zero_masked: bool) -> str:
    """Softmax over the last axis of (B, H, T, S) scores, `keep` the positions attended to; the
    ways differ only for a query whose every key is masked. Keras 3 sets the others to -1e9 (such
    a query attends to all keys alike) and its Softmax layer then zeroes them (`zero_masked`: the
    query gets zeros); Keras 2 adds (1 - mask) * -1e9 (the query keeps the softmax of its scores)."""
    if keep is None:
        return ctx.op("Softmax", [scores], axis=3)
    negative = ctx.const(np.float32(LARGE_NEGATIVE))
    if generation < 3:
        if keep.dtype == "bool":
            adder = ctx.op("Where", [keep.name, ctx.const(np.float32(0.0)), negative])
        else:
            adder = ctx.op("Mul", [ctx.op("Sub", [ctx.const(np.float32(1.0)), keep.name]), negative])
        return ctx.op("Softmax", [ctx.op("Add", [scores, adder])], axis=3)
    keep_name = keep.name
    probs = ctx.op("Softmax", [ctx.op("Where", [keep_name, scores, negative])], axis=3)
    return ctx.op("Where", [keep_name, probs, ctx.const(np.float32(0.0))]) if zero_masked else probs


def weight(layer: Layer, fragment: str) -> np.ndarray:
    """The attention weight whose stored name ends with `fragment` (`query/kernel`, ...)."""
    found = [w for w in layer.weights if w.name.endswith(fragment) or f"/{fragment}" in w.name]
    if not found:
        raise layer.refuse(f"no stored weight {fragment!r}")
    return np.asarray(found[0].value(), np.float32)


def _project(ctx: Context, layer: Layer, x: Value, part: str, heads: int, size: int, scale: np.float32) -> str:
    """x @ kernel (D, H, size) + bias (H, size), as (B, steps, H, size)."""
    kernel = weight(layer, f"{part}/kernel")
    if kernel.shape[1:] != (heads, size):
        raise layer.refuse(f"{part} kernel of shape {kernel.shape}")
    name = ctx.op("MatMul", [x, ctx.const(kernel.reshape(kernel.shape[0], -1) * scale, f"{part}/kernel")])
    if layer.config.get("use_bias", True):
        name = ctx.op("Add", [name, ctx.const(weight(layer, f"{part}/bias").reshape(-1) * scale, f"{part}/bias")])
    return ctx.reshape(name, [0, 0, heads, size])


def _mask(ctx: Context, layer: Layer, mask: Value | None, steps: int | None, sources: int | None) -> Value | None:
    """The (B, 1, T, S) or (T, S) mask of positions attended to, or None for all of them: boolean,
    except a float attention mask of Keras 2 taken as given (tf_keras adds (1 - mask) * -1e9)."""
    causal = bool(layer.kwargs.get("use_causal_mask"))
    keep = None
    if mask is not None:
        m = logical(ctx, mask)
        if m.dtype == "bool":
            keep = Value(m.name, m.shape, "bool")
        elif layer.generation >= 3 or causal:  # cast to bool: any nonzero value attends
            keep = Value(ctx.op("Cast", [m], to=onnx_dtype("bool")), m.shape, "bool")
        else:
            keep = Value(m.name if m.dtype == "float32" else ctx.op("Cast", [m], to=onnx_dtype("float32")),
                         m.shape, "float32")  # fmt: skip
        keep = keep.but(name=ctx.unsqueeze(keep.name, [1]))
    if causal:
        if steps is None or sources is None:
            raise layer.refuse("use_causal_mask over steps of unknown length")
        tril = np.tril(np.ones((steps, sources), bool))
        causal_keep = ctx.const(tril, "causal_mask")
        name = causal_keep if keep is None else ctx.op("And", [keep.name, causal_keep])
        keep = Value(name, (steps, sources), "bool")
    return keep
