"""The decoder blocks of KerasHub's language models: Llama's and Mistral's (RMS norms, rotary
grouped-query attention, Mistral's sliding window, the gated feed-forward) and Gemma's (its `1 + scale`
norms, Gemma 2's post-norms, logit soft cap and sliding window), and their RMS normalization layers.
Decoding caches are refused; queries whose every key is masked get zeros, as KerasHub's Softmax layer
gives them.
"""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct.attention import masked_softmax
from modeltool.exporters.direct.blocks import (
    CACHES,
    arguments,
    causal_mask,
    dense,
    padding_and_attention,
    rms,
    sub_layer,
)
from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context, Layer, onnx_dtype
from modeltool.exporters.direct.layout import logical

#: where Gemma's own RMSNormalization (scaling by 1 + scale) lives, unlike keras_hub.layers' one
GEMMA_MODULE = "keras_hub.src.models.gemma"


def rms_normalization(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """x / sqrt(mean(x^2) + eps) * scale over the last axis: Llama's and Mistral's layer norms,
    keras_hub.layers.RMSNormalization (a fixed eps of 1e-6); Gemma's RMSNormalization scales by
    (1 + scale)."""
    x = logical(ctx, inputs[0])
    scale = layer.array("scale").astype(np.float32)
    if GEMMA_MODULE in (layer.module or ""):
        scale = scale + np.float32(1.0)
    eps = float(layer.config.get("epsilon", 1e-6))
    return [x.but(name=rms(ctx, x.name, eps, scale), mask=None)]


def gated_decoder(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Llama's and Mistral's decoder block: RMS-normalized input, rotary grouped-query
    self-attention (causal; Mistral's also within `sliding_window`), residual; RMS-normalized,
    `activation(gate(x)) * up(x)` projected down, residual."""
    names = ("decoder_sequence", "decoder_padding_mask", "decoder_attention_mask")
    args = arguments(layer, inputs, names)
    cached = [c for c in CACHES if layer.kwargs.get(c) is not None]
    if cached:
        raise layer.refuse(f"{', '.join(cached)} (cached decoding) is not written by the direct route")
    cfg = layer.config
    if cfg.get("rope_frequency_adjustment_factor") is not None or cfg.get("rope_position_scaling_factor", 1.0) != 1.0:
        raise layer.refuse("rotary position scaling (rope_*_factor) is not written by the direct route")
    x = logical(ctx, args["decoder_sequence"])
    mask = padding_and_attention(ctx, x, args.get("decoder_padding_mask"), args.get("decoder_attention_mask"))
    causal = causal_mask(ctx, x, cfg.get("sliding_window"))
    keep = causal if mask is None else ctx.op("And", [mask.name, causal])
    eps = float(cfg.get("layer_norm_epsilon", 1e-6))
    h = rms(ctx, x.name, eps, sub_layer(layer, "self_attention_layernorm", "", {}).array("scale"))
    part = sub_layer(layer, "self_attention", "", {})
    kernels = [part.array(f"{p}/kernel").astype(np.float32) for p in ("query", "key", "value", "attention_output")]
    wavelength = float(cfg.get("rope_max_wavelength", 10000))
    scaling = float(cfg.get("rope_scaling_factor", 1.0) or 1.0)
    attended = _rotary_attention(ctx, layer, kernels, h, keep, wavelength=wavelength, scaling=scaling)
    x = x.but(name=ctx.op("Add", [attended, x]), mask=None)
    h = rms(ctx, x.name, eps, sub_layer(layer, "feedforward_layernorm", "", {}).array("scale"))
    gate = dense(ctx, layer, "feedforward_gate_dense", Value(h, x.shape, "float32"), None, cfg.get("activation"))
    up = dense(ctx, layer, "feedforward_intermediate_dense", Value(h, x.shape, "float32"), None, None)
    down = dense(ctx, layer, "feedforward_output_dense", up.but(name=ctx.op("Mul", [up, gate])), None, None)
    return [x.but(name=ctx.op("Add", [down, x]))]


def gemma_decoder(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Gemma's decoder block: RMS-normalized (1 + scale) input, rotary grouped-query attention
    (queries scaled by 1/sqrt(head_dim), Gemma 2's logit soft cap and sliding window where set),
    optionally normalized after, residual; `gelu_approximate(gate(x)) * up(x)` projected down,
    optionally normalized, residual. (Gemma's rotation interleaves the halves of queries and keys
    alike after the rotary embedding; a permutation of both leaves every q.k unchanged.)"""
    args = arguments(layer, inputs, ("x", "padding_mask"))
    if layer.kwargs.get("cache") is not None or layer.kwargs.get("cache_update_index") not in (None, 0):
        raise layer.refuse("cache (cached decoding) is not written by the direct route")
    cfg = layer.config
    x = logical(ctx, args["x"])
    eps = float(cfg.get("layer_norm_epsilon", 1e-6))

    def norm(name: str, value: str) -> str:
        return rms(ctx, value, eps, sub_layer(layer, name, "", {}).array("scale").astype(np.float32) + np.float32(1.0))

    mask = padding_and_attention(ctx, x, args.get("padding_mask"), None)
    window = cfg.get("sliding_window_size") if cfg.get("use_sliding_window_attention") else None
    causal = causal_mask(ctx, x, window)
    keep = causal if mask is None else ctx.op("And", [mask.name, causal])
    part = sub_layer(layer, "attention", "", {})
    wq, wk, wv = (
        np.transpose(part.array(f"{p}/kernel").astype(np.float32), (1, 0, 2)) for p in ("query", "key", "value")
    )
    wo = part.array("attention_output/kernel").astype(np.float32)
    attended = _rotary_attention(ctx, layer, [wq, wk, wv, wo], norm("pre_attention_norm", x.name), keep,
                                 wavelength=10_000.0, soft_cap=cfg.get("logit_soft_cap"))  # fmt: skip
    if cfg.get("use_post_attention_norm"):
        attended = norm("post_attention_norm", attended)
    x = x.but(name=ctx.op("Add", [x, attended]), mask=None)
    h = Value(norm("pre_ffw_norm", x.name), x.shape, "float32")
    gate = dense(ctx, layer, "ffw_gating", h, None, "gelu_approximate")
    up = dense(ctx, layer, "ffw_gating_2", h, None, None)
    down = dense(ctx, layer, "ffw_linear", up.but(name=ctx.op("Mul", [gate, up])), None, None).name
    if cfg.get("use_post_ffw_norm"):
        down = norm("post_ffw_norm", down)
    return [x.but(name=ctx.op("Add", [down, x]))]


def rotary_embedding(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """keras_hub.layers.RotaryEmbedding on its own: positions along axis 1, features last, the
    default and linear rotary types (the scaling divides the frequencies)."""
    cfg = layer.config
    x = logical(ctx, inputs[0])
    if layer.kwargs.get("start_index") not in (None, 0) or "positions" in layer.slots():
        raise layer.refuse("start_index/positions (cached decoding) are not written by the direct route")
    if cfg.get("rope_type", "linear") != "linear" or cfg.get("denominator_dim") is not None:
        raise layer.refuse(f"rope_type={cfg.get('rope_type')!r} (only the default, linear one is written)")
    if cfg.get("sequence_axis", 1) != 1 or cfg.get("feature_axis", -1) not in (-1, x.rank - 1) or x.rank < 3:
        raise layer.refuse("a sequence axis other than 1 or a feature axis other than the last")
    dim = x.shape[-1]
    if dim is None or dim % 2:
        raise layer.refuse(f"{dim} features (an even, known number is rotated)")
    cos, sin = _rotary_tables(ctx, x.name, dim, float(cfg.get("max_wavelength", 10000)),
                              float(cfg.get("scaling_factor", 1.0) or 1.0), x.rank)  # fmt: skip
    return [x.but(name=_rotate(ctx, x.name, cos, sin, dim, x.rank - 1), mask=None)]


def _rotary_attention(ctx: Context, layer: Layer, kernels: list[np.ndarray], x: str, keep: str, *,
                      wavelength: float, scaling: float = 1.0, soft_cap: float | None = None) -> str:  # fmt: skip
    """Grouped-query attention with rotary positions (Llama's, Mistral's, Gemma's): query, key and
    value projections (kernels (features, heads, head_dim), no bias), rotary embedding of queries
    and keys, each key/value head serving its group of query heads, softmax(q k^T / sqrt(head_dim))
    (logits soft-capped by `cap * tanh(logits / cap)` where set) over the kept keys, the output
    projection (kernel (heads, head_dim, features))."""
    wq, wk, wv, wo = kernels
    dim, heads, head_dim = wq.shape
    kv_heads = wk.shape[1]
    if heads % kv_heads or wo.shape != (heads, head_dim, dim) or head_dim % 2:
        raise layer.refuse(f"attention kernels of shapes {wq.shape}, {wk.shape}, {wo.shape}")
    scale = np.float32(1.0 / np.sqrt(head_dim))
    cos, sin = _rotary_tables(ctx, x, head_dim, wavelength, scaling)

    def heads_of(kernel: np.ndarray, count: int, role: str) -> str:
        y = ctx.op("MatMul", [x, ctx.const(kernel.reshape(dim, count * head_dim), role)])
        return ctx.reshape(y, [0, 0, count, head_dim])

    q = _rotate(ctx, heads_of(wq, heads, "query/kernel"), cos, sin, head_dim)
    k = _rotate(ctx, heads_of(wk, kv_heads, "key/kernel"), cos, sin, head_dim)
    v = heads_of(wv, kv_heads, "value/kernel")
    if kv_heads != heads:  # ops.repeat(k, heads // kv_heads, axis=2): each head repeated in place
        k, v = (ctx.reshape(ctx.op("Tile", [ctx.unsqueeze(t, [3]), ctx.ints([1, 1, 1, heads // kv_heads, 1])]),
                            [0, 0, heads, head_dim]) for t in (k, v))  # fmt: skip
    q = ctx.op("Mul", [ctx.op("Transpose", [q], perm=[0, 2, 1, 3]), ctx.const(scale)])
    scores = ctx.op("MatMul", [q, ctx.op("Transpose", [k], perm=[0, 2, 3, 1])])
    if soft_cap is not None:
        cap = ctx.const(np.float32(soft_cap))
        scores = ctx.op("Mul", [ctx.op("Tanh", [ctx.op("Div", [scores, cap])]), cap])
    # KerasHub's Softmax layer zeroes a query whose every key is masked (its fused JAX kernel, where
    # available, averages all values instead: only a sliding window over a padded tail makes one)
    keep_heads = Value(ctx.unsqueeze(keep, [1]), (None, 1, None, None), "bool")
    probs = masked_softmax(ctx, scores, keep_heads, layer.generation, zero_masked=True)
    joined = ctx.op("Transpose", [ctx.op("MatMul", [probs, ctx.op("Transpose", [v], perm=[0, 2, 1, 3])])],
                    perm=[0, 2, 1, 3])  # fmt: skip
    joined = ctx.reshape(joined, [0, 0, heads * head_dim])
    return ctx.op("MatMul", [joined, ctx.const(wo.reshape(heads * head_dim, dim), "attention_output/kernel")])


def _rotary_tables(ctx: Context, x: str, head_dim: int, wavelength: float, scaling: float,
                   rank: int = 4) -> tuple[str, str]:  # fmt: skip
    """cos and sin of position * inverse frequency, (1, T, 1.., head_dim) for a tensor of `rank`, the
    frequencies repeated over both halves (KerasHub's RotaryEmbedding: `max_wavelength ** -(2i /
    head_dim)`, divided by a linear `scaling_factor`)."""
    inverse = (1.0 / wavelength ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim))) / scaling
    steps = ctx.op("Slice", [ctx.op("Shape", [x]), ctx.ints([1]), ctx.ints([2])])
    positions = ctx.op("Range", [ctx.const(np.float32(0.0)), ctx.op("Cast", [ctx.squeeze(steps, [0])],
                       to=onnx_dtype("float32")), ctx.const(np.float32(1.0))])  # fmt: skip
    freq = ctx.op(
        "Mul", [ctx.unsqueeze(positions, [1]), ctx.const(inverse.astype(np.float32)[None, :], "inverse_freq")]
    )
    angles = ctx.reshape(ctx.op("Concat", [freq, freq], axis=1), [1, -1, *([1] * (rank - 3)), head_dim])
    return ctx.op("Cos", [angles]), ctx.op("Sin", [angles])


def _rotate(ctx: Context, t: str, cos: str, sin: str, head_dim: int, axis: int = 3) -> str:
    """t * cos + rotate_half(t) * sin, rotate_half(t) = concat(-second half, first half) over `axis`."""
    first, second = ctx.split(t, [head_dim // 2, head_dim // 2], axis)
    turned = ctx.op("Concat", [ctx.op("Neg", [second]), first], axis=axis)
    return ctx.op("Add", [ctx.op("Mul", [t, cos]), ctx.op("Mul", [turned, sin])])
