"""MultiHeadAttention as TFLite builtin ops, as Keras computes it (see the direct ONNX route's
`attention.py` for the semantics both routes share):

    q, k, v = FULLY_CONNECTED projections (the EinsumDense kernels flattened), split into heads
    scores  = BATCH_MATMUL(q, k, adj_y) with the 1/sqrt(key_dim) scale folded into q's projection
    probs   = SOFTMAX over the keys, masked positions as the writer's Keras treats them (SELECT_V2)
    output  = FULLY_CONNECTED of BATCH_MATMUL(probs, v), heads joined

The query and key lengths must be known (heads are split with RESHAPE, whose one open dim is the batch).
"""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct.attention import LARGE_NEGATIVE, attention_inputs, weight, zero_masked_queries
from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.litert.context import LiteContext, options
from modeltool.exporters.litert.layout import transpose


def _project(ctx: LiteContext, layer: Layer, x: Value, part: str, heads: int, size: int, scale: float) -> Value:
    """x @ kernel (D, H, size) + bias (H, size), as (B, steps, H, size)."""
    kernel = weight(layer, f"{part}/kernel")
    if kernel.shape[1:] != (heads, size):
        raise layer.refuse(f"{part} kernel of shape {kernel.shape}")
    flat = (kernel.reshape(kernel.shape[0], -1) * np.float32(scale)).astype(np.float32)
    bias = (weight(layer, f"{part}/bias").reshape(-1) * np.float32(scale) if layer.config.get("use_bias", True)
            else np.zeros(flat.shape[1], np.float32))  # fmt: skip
    y = ctx.op("FULLY_CONNECTED", [x, ctx.const(np.ascontiguousarray(flat.T), f"{part}/kernel"),
                                   ctx.const(bias.astype(np.float32), f"{part}/bias")],
               (*x.shape[:-1], heads * size), opts=options("FullyConnectedOptions", keepNumDims=True))  # fmt: skip
    return ctx.reshape(y, (x.shape[0], x.shape[1], heads, size))


def _keep(ctx: LiteContext, layer: Layer, mask: Value | None, steps: int, sources: int) -> Value | None:
    """The (B, 1, T, S) or (T, S) mask of positions attended to, or None: boolean, except a float
    attention mask of Keras 2 taken as given (tf_keras adds (1 - mask) * -1e9)."""
    causal = bool(layer.kwargs.get("use_causal_mask"))
    keep = None
    if mask is not None:
        if mask.dtype != "bool" and (layer.generation >= 3 or causal):  # any nonzero value attends
            mask = ctx.op("NOT_EQUAL", [mask, ctx.const(np.zeros((), mask.dtype), "zero")], mask.shape, "bool")
        elif mask.dtype not in ("bool", "float32"):
            mask = ctx.op("CAST", [mask], mask.shape, "float32")
        keep = ctx.reshape(mask, (mask.shape[0], 1, steps, sources))
    if causal:
        tril = ctx.const_value(np.tril(np.ones((steps, sources), bool)), "causal_mask")
        if keep is None:
            return tril
        keep = ctx.op("LOGICAL_AND", [keep, tril], keep.shape, "bool")
    return keep


def _softmax(ctx: LiteContext, layer: Layer, scores: Value, keep: Value | None) -> Value:
    soft = options("SoftmaxOptions", beta=1.0)
    if keep is None:
        return ctx.unary("SOFTMAX", scores, soft)
    negative = ctx.scalar(LARGE_NEGATIVE)
    if keep.dtype != "bool":  # Keras 2's float mask: scores + (1 - mask) * -1e9
        adder = ctx.binary("MUL", ctx.op("SUB", [ctx.scalar(1.0), keep], keep.shape, opts=options("SubOptions")),
                           negative)  # fmt: skip
        return ctx.unary("SOFTMAX", ctx.binary("ADD", scores, adder, scores.shape), soft)
    if layer.generation < 3:
        adder = ctx.op("SELECT_V2", [keep, ctx.scalar(0.0), negative], keep.shape)
        return ctx.unary("SOFTMAX", ctx.binary("ADD", scores, adder, scores.shape), soft)
    probs = ctx.unary("SOFTMAX", ctx.op("SELECT_V2", [keep, scores, negative], scores.shape), soft)
    if zero_masked_queries(layer):
        probs = ctx.op("SELECT_V2", [keep, probs, ctx.scalar(0.0)], scores.shape)
    return probs


def multi_head_attention(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    query, value, key, mask = attention_inputs(layer, inputs)
    if query.rank != 3 or value.rank != 3:
        raise layer.refuse("inputs of rank other than 3")
    steps, sources = query.shape[1], key.shape[1]
    if steps is None or sources is None:
        raise layer.refuse("query or key lengths unknown (fix them with --input-shape)")
    heads, key_dim = int(cfg["num_heads"]), int(cfg["key_dim"])
    value_dim = int(cfg.get("value_dim") or key_dim)
    batch = query.shape[0]
    q = transpose(ctx, _project(ctx, layer, query, "query", heads, key_dim, 1.0 / np.sqrt(float(key_dim))),
                  [0, 2, 1, 3])  # fmt: skip
    k = transpose(ctx, _project(ctx, layer, key, "key", heads, key_dim, 1.0), [0, 2, 1, 3])
    v = transpose(ctx, _project(ctx, layer, value, "value", heads, value_dim, 1.0), [0, 2, 1, 3])
    scores = ctx.op("BATCH_MATMUL", [q, k], (batch, heads, steps, sources),
                    opts=options("BatchMatMulOptions", adjX=False, adjY=True))  # fmt: skip
    probs = _softmax(ctx, layer, scores, _keep(ctx, layer, mask, steps, sources))
    mixed = ctx.op("BATCH_MATMUL", [probs, v], (batch, heads, steps, value_dim),
                   opts=options("BatchMatMulOptions", adjX=False, adjY=False))  # fmt: skip
    joined = ctx.reshape(transpose(ctx, mixed, [0, 2, 1, 3]), (batch, steps, heads * value_dim))
    out_kernel = weight(layer, "attention_output/kernel")
    if out_kernel.ndim != 3:
        raise layer.refuse(f"an output projection of shape {out_kernel.shape} (output_shape set)")
    flat = out_kernel.reshape(heads * value_dim, -1)
    bias = (weight(layer, "attention_output/bias").reshape(-1) if cfg.get("use_bias", True)
            else np.zeros(flat.shape[1], np.float32))  # fmt: skip
    out = ctx.op("FULLY_CONNECTED", [joined, ctx.const(np.ascontiguousarray(flat.T), "attention_output/kernel"),
                                     ctx.const(bias.astype(np.float32), "attention_output/bias")],
                 (batch, steps, flat.shape[1]), opts=options("FullyConnectedOptions", keepNumDims=True))  # fmt: skip
    return [out, probs] if layer.kwargs.get("return_attention_scores") else [out]
