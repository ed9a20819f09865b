"""KerasHub's general building blocks (`keras_hub.layers`) and ViT's as ONNX: the embeddings
(TokenAndPositionEmbedding, PositionEmbedding), TransformerEncoder and TransformerDecoder (padding and
attention masks, the causal mask, cross-attention over an encoder sequence), ViT's patch embedding and
encoder. Each block is composed from the converters of the Keras layers it is made of (`blocks.py`);
dropout is the identity at inference; decoding caches and `return_attention_scores` are refused. The
decoder blocks of the language models are in `decoders.py`.
"""

from __future__ import annotations

import numpy as np

from modeltool.exporters.direct.blocks import (
    CACHES,
    arguments,
    attend,
    call,
    causal_mask,
    feedforward,
    padding_and_attention,
    residual,
    sub_layer,
)
from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import TENSOR, Context, Layer, onnx_dtype
from modeltool.exporters.direct.layout import logical


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
    tokens = sub_layer(layer, "token_embedding", "Embedding", {}).array("embeddings").astype(np.float32)
    table = ctx.const(tokens, "token_embedding/embeddings")
    embedded = ctx.op("Gather", [table, index], axis=0)
    steps = ctx.op("Slice", [ctx.op("Shape", [ids]), ctx.ints([-1]), ctx.ints([ids.rank])])
    rows = _rows(ctx, sub_layer(layer, "position_embedding", "PositionEmbedding", {}).array("embeddings"), steps)
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
    args = arguments(layer, inputs, ("inputs", "padding_mask", "attention_mask"))
    if layer.kwargs.get("return_attention_scores"):
        raise layer.refuse("return_attention_scores=True is not written by the direct route")
    x = logical(ctx, args["inputs"])
    mask = padding_and_attention(ctx, x, args.get("padding_mask"), args.get("attention_mask"))
    x = residual(ctx, layer, x, "self_attention_layer_norm",
                  lambda h: attend(ctx, layer, "self_attention_layer", h, h, mask))  # fmt: skip
    return [feedforward(ctx, layer, x)]


def transformer_decoder(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    """Causal self-attention, cross-attention over the encoder sequence when given, feed-forward;
    residuals and LayerNormalization as in the encoder."""
    names = ("decoder_sequence", "encoder_sequence", "decoder_padding_mask", "decoder_attention_mask",
             "encoder_padding_mask", "encoder_attention_mask")  # fmt: skip
    args = arguments(layer, inputs, names)
    cached = [c for c in CACHES if layer.kwargs.get(c) is not None]
    if cached:
        raise layer.refuse(f"{', '.join(cached)} (cached decoding) is not written by the direct route")
    x = logical(ctx, args["decoder_sequence"])
    mask = padding_and_attention(ctx, x, args.get("decoder_padding_mask"), args.get("decoder_attention_mask"))
    if layer.kwargs.get("use_causal_mask", True):
        causal = Value(causal_mask(ctx, x), (1, None, None), "bool")
        mask = causal if mask is None else mask.but(name=ctx.op("And", [mask, causal]), shape=(None, None, None))
    x = residual(ctx, layer, x, "self_attention_layer_norm",
                  lambda h: attend(ctx, layer, "self_attention", h, h, mask))  # fmt: skip
    encoder = args.get("encoder_sequence")
    if encoder is not None:
        encoder = logical(ctx, encoder)
        cross = padding_and_attention(ctx, encoder, args.get("encoder_padding_mask"),
                                       args.get("encoder_attention_mask"))  # fmt: skip
        x = residual(ctx, layer, x, "cross_attention_layer_norm",
                      lambda h: attend(ctx, layer, "cross_attention", h, encoder, cross))  # fmt: skip
    return [feedforward(ctx, layer, x)]


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
    patches = logical(ctx, call(ctx, sub_layer(layer, "patch_embedding", "Conv2D", conv_cfg), inputs[:1])[0])
    count = None if None in patches.shape[1:3] else patches.shape[1] * patches.shape[2]
    x = ctx.reshape(patches, [0, -1, hidden])
    if cfg.get("use_class_token", True):
        token = ctx.const(layer.array("class_token").astype(np.float32).reshape(1, 1, hidden), "class_token")
        batch = ctx.op("Slice", [ctx.op("Shape", [x]), ctx.ints([0]), ctx.ints([1])])
        tiled = ctx.op("Tile", [token, ctx.op("Concat", [batch, ctx.ints([1, 1])], axis=0)])
        x = ctx.op("Concat", [tiled, x], axis=1)
        count = None if count is None else count + 1
    table = sub_layer(layer, "position_embedding", "Embedding", {}).array("embeddings").astype(np.float32)
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
        return call(ctx, sub_layer(block, name, "LayerNormalization", cfg_norm), [value])[0]

    for i in range(1, int(cfg["num_layers"]) + 1):
        block = sub_layer(layer, f"transformer_block_{i}", "ViTEncoderBlock", {})
        h = norm(block, "ln_1", x)
        mha_cfg = {"num_heads": heads, "key_dim": hidden // heads, "use_bias": mha_bias}
        h = call(ctx, sub_layer(block, "mha", "MultiHeadAttention", mha_cfg, [TENSOR, TENSOR]), [h, h])[0]
        x = x.but(name=ctx.op("Add", [logical(ctx, h), x]), mask=None)
        mlp = sub_layer(block, "mlp", "MLP", {})
        h = norm(block, "ln_2", x)
        for name, units, act in (("dense_1", cfg["mlp_dim"], "gelu"), ("dense_2", hidden, None)):
            dense_cfg = {"units": int(units), "activation": act, "use_bias": mlp_bias}
            h = call(ctx, sub_layer(mlp, name, "Dense", dense_cfg), [h])[0]
        x = x.but(name=ctx.op("Add", [x, logical(ctx, h)]))
    return [norm(layer, "ln", x)]
