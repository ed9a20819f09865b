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

from modeltool.exporters.direct.attention import masked_softmax
from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import TENSOR, Context, Layer, onnx_dtype
from modeltool.exporters.direct.layout import logical
from modeltool.keras import layers as keras_layers

#: where Gemma's own RMSNormalization (scaling by 1 + scale) lives, unlike keras_hub.layers' one
GEMMA_MODULE = "keras_hub.src.models.gemma"
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
        causal = Value(_causal(ctx, x), (1, None, None), "bool")
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


def rms_normalization(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """x / sqrt(mean(x^2) + eps) * scale over the last axis: Llama's and Mistral's layer norms,
    keras_hub.layers.RMSNormalization (a fixed eps of 1e-6); Gemma's RMSNormalization scales by
    (1 + scale)."""
    x = logical(ctx, inputs[0])
    scale = layer.array("scale").astype(np.float32)
    if GEMMA_MODULE in (layer.module or ""):
        scale = scale + np.float32(1.0)
    eps = float(layer.config.get("epsilon", 1e-6))
    return [x.but(name=_rms(ctx, x.name, eps, scale), mask=None)]


def gated_decoder(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Llama's and Mistral's decoder block: RMS-normalized input, rotary grouped-query
    self-attention (causal; Mistral's also within `sliding_window`), residual; RMS-normalized,
    `activation(gate(x)) * up(x)` projected down, residual."""
    names = ("decoder_sequence", "decoder_padding_mask", "decoder_attention_mask")
    args = _arguments(layer, inputs, names)
    cached = [c for c in CACHES if layer.kwargs.get(c) is not None]
    if cached:
        raise layer.refuse(f"{', '.join(cached)} (cached decoding) is not written by the direct route")
    cfg = layer.config
    if cfg.get("rope_frequency_adjustment_factor") is not None or cfg.get("rope_position_scaling_factor", 1.0) != 1.0:
        raise layer.refuse("rotary position scaling (rope_*_factor) is not written by the direct route")
    x = logical(ctx, args["decoder_sequence"])
    mask = _padding_and_attention(ctx, x, args.get("decoder_padding_mask"), args.get("decoder_attention_mask"))
    causal = _causal(ctx, x, cfg.get("sliding_window"))
    keep = causal if mask is None else ctx.op("And", [mask.name, causal])
    eps = float(cfg.get("layer_norm_epsilon", 1e-6))
    h = _rms(ctx, x.name, eps, _part(layer, "self_attention_layernorm", "", {}).array("scale"))
    part = _part(layer, "self_attention", "", {})
    kernels = [part.array(f"{p}/kernel").astype(np.float32) for p in ("query", "key", "value", "attention_output")]
    wavelength = float(cfg.get("rope_max_wavelength", 10000))
    scaling = float(cfg.get("rope_scaling_factor", 1.0) or 1.0)
    attended = _rotary_attention(ctx, layer, kernels, h, keep, wavelength=wavelength, scaling=scaling)
    x = x.but(name=ctx.op("Add", [attended, x]), mask=None)
    h = _rms(ctx, x.name, eps, _part(layer, "feedforward_layernorm", "", {}).array("scale"))
    gate = _dense(ctx, layer, "feedforward_gate_dense", Value(h, x.shape, "float32"), None, cfg.get("activation"))
    up = _dense(ctx, layer, "feedforward_intermediate_dense", Value(h, x.shape, "float32"), None, None)
    down = _dense(ctx, layer, "feedforward_output_dense", up.but(name=ctx.op("Mul", [up, gate])), None, None)
    return [x.but(name=ctx.op("Add", [down, x]))]


def gemma_decoder(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Gemma's decoder block: RMS-normalized (1 + scale) input, rotary grouped-query attention
    (queries scaled by 1/sqrt(head_dim), Gemma 2's logit soft cap and sliding window where set),
    optionally normalized after, residual; `gelu_approximate(gate(x)) * up(x)` projected down,
    optionally normalized, residual. (Gemma's rotation interleaves the halves of queries and keys
    alike after the rotary embedding; a permutation of both leaves every q.k unchanged.)"""
    args = _arguments(layer, inputs, ("x", "padding_mask"))
    if layer.kwargs.get("cache") is not None or layer.kwargs.get("cache_update_index") not in (None, 0):
        raise layer.refuse("cache (cached decoding) is not written by the direct route")
    cfg = layer.config
    x = logical(ctx, args["x"])
    eps = float(cfg.get("layer_norm_epsilon", 1e-6))

    def norm(name: str, value: str) -> str:
        return _rms(ctx, value, eps, _part(layer, name, "", {}).array("scale").astype(np.float32) + np.float32(1.0))

    mask = _padding_and_attention(ctx, x, args.get("padding_mask"), None)
    window = cfg.get("sliding_window_size") if cfg.get("use_sliding_window_attention") else None
    causal = _causal(ctx, x, window)
    keep = causal if mask is None else ctx.op("And", [mask.name, causal])
    part = _part(layer, "attention", "", {})
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
    gate = _dense(ctx, layer, "ffw_gating", h, None, "gelu_approximate")
    up = _dense(ctx, layer, "ffw_gating_2", h, None, None)
    down = _dense(ctx, layer, "ffw_linear", up.but(name=ctx.op("Mul", [gate, up])), None, None).name
    if cfg.get("use_post_ffw_norm"):
        down = norm("post_ffw_norm", down)
    return [x.but(name=ctx.op("Add", [down, x]))]


def vit_patching_and_embedding(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """ViT's patches: a Conv2D with the patch size as stride, flattened to (B, patches, hidden),
    the class token put first, position embeddings added."""
    cfg = layer.config
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise layer.refuse("data_format='channels_first' is not written by the direct route")
    hidden = int(cfg["hidden_dim"])
    conv_cfg = {
        "filters": hidden,
        "kernel_size": cfg["patch_size"],
        "strides": cfg["patch_size"],
        "padding": "valid",
        "data_format": "channels_last",
        "use_bias": bool(cfg.get("use_patch_bias", True)),
        "activation": None,
    }
    patches = logical(ctx, _call(ctx, _part(layer, "patch_embedding", "Conv2D", conv_cfg), inputs[:1])[0])
    count = None if None in patches.shape[1:3] else patches.shape[1] * patches.shape[2]
    x = ctx.reshape(patches, [0, -1, hidden])
    if cfg.get("use_class_token", True):
        token = ctx.const(layer.array("class_token").astype(np.float32).reshape(1, 1, hidden), "class_token")
        batch = ctx.op("Slice", [ctx.op("Shape", [x]), ctx.ints([0]), ctx.ints([1])])
        tiled = ctx.op("Tile", [token, ctx.op("Concat", [batch, ctx.ints([1, 1])], axis=0)])
        x = ctx.op("Concat", [tiled, x], axis=1)
        count = None if count is None else count + 1
    table = _part(layer, "position_embedding", "Embedding", {}).array("embeddings").astype(np.float32)
    out = ctx.op("Add", [x, ctx.const(table[None], "position_embedding/embeddings")])
    return [Value(out, (patches.shape[0], count, hidden), "float32")]


def vit_encoder(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """ViT's encoder: `num_layers` pre-norm blocks (LayerNormalization, MultiHeadAttention,
    residual; LayerNormalization, Dense with exact GELU, Dense, residual), a final LayerNormalization."""
    cfg = layer.config
    x = logical(ctx, inputs[0])
    heads, hidden, eps = int(cfg["num_heads"]), int(cfg["hidden_dim"]), float(cfg.get("layer_norm_epsilon", 1e-6))
    mha_bias, mlp_bias = bool(cfg.get("use_mha_bias", True)), bool(cfg.get("use_mlp_bias", True))

    def norm(block: Layer, name: str, value: Value) -> Value:
        cfg_norm = {"axis": -1, "epsilon": eps, "center": True, "scale": True}
        return _call(ctx, _part(block, name, "LayerNormalization", cfg_norm), [value])[0]

    for i in range(1, int(cfg["num_layers"]) + 1):
        block = _part(layer, f"transformer_block_{i}", "ViTEncoderBlock", {})
        h = norm(block, "ln_1", x)
        mha_cfg = {"num_heads": heads, "key_dim": hidden // heads, "use_bias": mha_bias}
        h = _call(ctx, _part(block, "mha", "MultiHeadAttention", mha_cfg, [TENSOR, TENSOR]), [h, h])[0]
        x = x.but(name=ctx.op("Add", [logical(ctx, h), x]), mask=None)
        mlp = _part(block, "mlp", "MLP", {})
        h = norm(block, "ln_2", x)
        for name, units, act in (("dense_1", cfg["mlp_dim"], "gelu"), ("dense_2", hidden, None)):
            dense_cfg = {"units": int(units), "activation": act, "use_bias": mlp_bias}
            h = _call(ctx, _part(mlp, name, "Dense", dense_cfg), [h])[0]
        x = x.but(name=ctx.op("Add", [x, logical(ctx, h)]))
    return [norm(layer, "ln", x)]


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


def _call(ctx: Context, part: Layer, inputs: list[Value]) -> list[Value]:
    """One part of a block written by its Keras class's converter, its output shapes sized as the
    walk sizes a layer (some converters need them)."""
    info = keras_layers.infer(part.cls, part.config, [v.shape for v in inputs], part.module)
    if info is not None and info.output_shapes != [None]:
        part.out_shapes = list(info.output_shapes)
    return ctx.dispatch(part, inputs)


def _attend(ctx: Context, layer: Layer, name: str, query: Value, value: Value, mask: Value | None) -> Value:
    heads = int(layer.config["num_heads"])
    dim = int(query.shape[-1])
    if dim % heads:
        raise layer.refuse(f"{dim} features over {heads} heads")
    cfg = {"num_heads": heads, "key_dim": dim // heads, "use_bias": True, "dropout": layer.config.get("dropout", 0)}
    kwargs = {"attention_mask": TENSOR} if mask is not None else {}
    part = _part(layer, name, "MultiHeadAttention", cfg, [TENSOR, TENSOR], kwargs)
    return _call(ctx, part, [query, value] + ([mask] if mask is not None else []))[0]


def _norm(ctx: Context, layer: Layer, name: str, x: Value) -> Value:
    eps = float(layer.config.get("layer_norm_epsilon", 1e-5))
    part = _part(layer, name, "LayerNormalization", {"axis": -1, "epsilon": eps, "center": True, "scale": True})
    return _call(ctx, part, [x])[0]


def _dense(ctx: Context, layer: Layer, name: str, x: Value, units: int | None, activation: Any) -> Value:
    part = _part(layer, name, "Dense", {"units": units, "activation": activation, "use_bias": True})
    return _call(ctx, part, [x])[0]


def _rms(ctx: Context, x: str, eps: float, scale: np.ndarray) -> str:
    square = ctx.reduce("ReduceMean", ctx.op("Mul", [x, x]), [-1], True)
    inv = ctx.op("Reciprocal", [ctx.op("Sqrt", [ctx.op("Add", [square, ctx.const(np.float32(eps))])])])
    return ctx.op("Mul", [ctx.op("Mul", [x, inv]), ctx.const(scale.astype(np.float32).reshape(-1), "scale")])


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


def _rotary_tables(ctx: Context, x: str, head_dim: int, wavelength: float, scaling: float) -> tuple[str, str]:
    """cos and sin of position * inverse frequency, (1, T, 1, head_dim), the frequencies repeated
    over both halves (KerasHub's RotaryEmbedding: `max_wavelength ** -(2i / head_dim)`, divided by
    a linear `scaling_factor`)."""
    inverse = (1.0 / wavelength ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim))) / scaling
    steps = ctx.op("Slice", [ctx.op("Shape", [x]), ctx.ints([1]), ctx.ints([2])])
    positions = ctx.op("Range", [ctx.const(np.float32(0.0)), ctx.op("Cast", [ctx.squeeze(steps, [0])],
                       to=onnx_dtype("float32")), ctx.const(np.float32(1.0))])  # fmt: skip
    freq = ctx.op(
        "Mul", [ctx.unsqueeze(positions, [1]), ctx.const(inverse.astype(np.float32)[None, :], "inverse_freq")]
    )
    angles = ctx.reshape(ctx.op("Concat", [freq, freq], axis=1), [1, -1, 1, head_dim])
    return ctx.op("Cos", [angles]), ctx.op("Sin", [angles])


def _rotate(ctx: Context, t: str, cos: str, sin: str, head_dim: int) -> str:
    """t * cos + rotate_half(t) * sin, rotate_half(t) = concat(-second half, first half)."""
    first, second = ctx.split(t, [head_dim // 2, head_dim // 2], 3)
    turned = ctx.op("Concat", [ctx.op("Neg", [second]), first], axis=3)
    return ctx.op("Add", [ctx.op("Mul", [t, cos]), ctx.op("Mul", [turned, sin])])


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


def _causal(ctx: Context, x: Value, window: int | None = None) -> str:
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
