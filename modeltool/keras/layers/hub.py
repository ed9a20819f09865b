"""KerasHub's building blocks (`keras_hub.layers`): embeddings and transformer blocks.

A KerasHub backbone's file holds only its constructor arguments; modeltool sees these layers when the
installed library builds the backbone's functional graph (`keras/expand.py`), or in a user's own
functional model that calls them. They are declared like Keras's own layers (shapes, weights, the
direct ONNX converter), keyed `keras_hub>Class` so that a user's class of the same name is not
taken for them. Weight roles are paths inside the block (`self_attention_layer/query/kernel`), as
Keras names its variables.
"""

from __future__ import annotations

from modeltool.keras.layers.attention import multi_head_attention
from modeltool.keras.layers.spec import Family, LayerInfo, WeightSpec, first

family = Family("hub")
H = "keras_hub>"


#: the attributes a block keeps its parts in, where a Keras 3 weights file stores them
#: (`_self_attention_layer/query_dense/vars/0`), by the parts' names
ATTRIBUTES = {"self_attention": "_self_attention_layer", "self_attention_layer": "_self_attention_layer",
              "cross_attention": "_cross_attention_layer", "query": "query_dense", "key": "key_dense",
              "value": "value_dense", "attention_output": "output_dense", "token_embedding": "token_embedding",
              "position_embedding": "position_embedding", "patch_embedding": "patch_embedding"}  # fmt: skip


def _spec(path: str, shape: tuple, trainable: bool = True) -> WeightSpec:
    """The weight at `path` (`self_attention_layer/query/kernel`): role, name prefix, and where a
    Keras 3 file stores it (the first part under its `_attribute`, attention parts as `query_dense`)."""
    prefix, _, role = path.rpartition("/")
    parts = prefix.split("/") if prefix else []
    stored = [ATTRIBUTES.get(p, f"_{p}" if i == 0 else p) for i, p in enumerate(parts)]
    index = 0 if role in ("kernel", "gamma", "embeddings", "scale") else 1
    return WeightSpec(role, shape, trainable, ("/".join(stored), index), prefix)


def _attention(name: str, dim: int | None, heads: int) -> list[WeightSpec]:
    key = None if dim is None else dim // heads
    out = []
    for part in ("query", "key", "value"):
        out += [_spec(f"{name}/{part}/kernel", (dim, heads, key)), _spec(f"{name}/{part}/bias", (heads, key))]
    return out + [_spec(f"{name}/attention_output/kernel", (heads, key, dim)),
                  _spec(f"{name}/attention_output/bias", (dim,))]  # fmt: skip


def _norm(name: str, dim: int | None) -> list[WeightSpec]:
    return [_spec(f"{name}/gamma", (dim,)), _spec(f"{name}/beta", (dim,))]


def _feedforward(dim: int | None, inner: int) -> list[WeightSpec]:
    return [_spec("feedforward_intermediate_dense/kernel", (dim, inner)),
            _spec("feedforward_intermediate_dense/bias", (inner,)),
            _spec("feedforward_output_dense/kernel", (inner, dim)),
            _spec("feedforward_output_dense/bias", (dim,))]  # fmt: skip


@family.declare(H + "PositionEmbedding", onnx="hub:position_embedding")
def _position_embedding(cfg, shapes):
    """The first `steps` rows of a (sequence_length, features) table, broadcast to the input's shape."""
    s = first(shapes)
    return LayerInfo([s], [WeightSpec("embeddings", (cfg["sequence_length"], s[-1] if s else None))])


@family.declare(H + "TokenAndPositionEmbedding", onnx="hub:token_and_position_embedding")
def _token_and_position(cfg, shapes):
    s = first(shapes)
    dim = cfg["embedding_dim"]
    w = [_spec("token_embedding/embeddings", (cfg["vocabulary_size"], dim)),
         _spec("position_embedding/embeddings", (cfg["sequence_length"], dim))]  # fmt: skip
    return LayerInfo([None if s is None else (*s, dim)], w)


@family.declare(H + "TransformerEncoder", onnx="hub:transformer_encoder")
def _transformer_encoder(cfg, shapes):
    """Self-attention and feed-forward, each with a residual and a LayerNormalization (before or after)."""
    s = first(shapes)
    dim = s[-1] if s else None
    w = _attention("self_attention_layer", dim, cfg["num_heads"]) + _norm("self_attention_layer_norm", dim)
    w += _norm("feedforward_layer_norm", dim) + _feedforward(dim, cfg["intermediate_dim"])
    return LayerInfo([s], w)


@family.declare(H + "TransformerDecoder", onnx="hub:transformer_decoder")
def _transformer_decoder(cfg, shapes):
    """Causal self-attention, cross-attention when built with an encoder sequence, feed-forward."""
    s = first(shapes)
    dim = s[-1] if s else None
    heads = cfg["num_heads"]
    w = _attention("self_attention", dim, heads) + _norm("self_attention_layer_norm", dim)
    if cfg.get("encoder_sequence_shape") is not None or len(shapes) > 1:
        w += _attention("cross_attention", dim, heads) + _norm("cross_attention_layer_norm", dim)
    w += _feedforward(dim, cfg["intermediate_dim"]) + _norm("feedforward_layer_norm", dim)
    return LayerInfo([s], w)


@family.declare(H + "LlamaTransformerDecoder", H + "MistralTransformerDecoder", onnx="decoders:gated_decoder")
def _gated_decoder(cfg, shapes):
    """RMS norms, rotary grouped-query attention (no biases), gated feed-forward."""
    s = first(shapes)
    dim = s[-1] if s else None
    heads, kv = cfg["num_query_heads"], cfg["num_key_value_heads"]
    head = cfg.get("head_dim") or (None if dim is None else dim // heads)
    inner = cfg["intermediate_dim"]
    w = [_spec("self_attention/query/kernel", (dim, heads, head)), _spec("self_attention/key/kernel", (dim, kv, head)),
         _spec("self_attention/value/kernel", (dim, kv, head)),
         _spec("self_attention/attention_output/kernel", (heads, head, dim)),
         _spec("self_attention_layernorm/scale", (dim,)),
         _spec("feedforward_intermediate_dense/kernel", (dim, inner)),
         _spec("feedforward_gate_dense/kernel", (dim, inner)), _spec("feedforward_output_dense/kernel", (inner, dim)),
         _spec("feedforward_layernorm/scale", (dim,))]  # fmt: skip
    return LayerInfo([s], w)


@family.declare(H + "LlamaLayerNorm", H + "MistralLayerNormalization", H + "RMSNormalization",
                onnx="decoders:rms_normalization")  # fmt: skip
def _rms_norm(cfg, shapes):
    s = first(shapes)
    return LayerInfo([s], [WeightSpec("scale", (s[-1] if s else None,))])


@family.declare(H + "GemmaDecoderBlock", onnx="decoders:gemma_decoder")
def _gemma_decoder(cfg, shapes):
    """RMS norms (before, and after where Gemma 2 sets them), rotary attention, gated feed-forward."""
    s = first(shapes)
    dim = s[-1] if s else None
    heads, kv, head, inner = (
        cfg["num_query_heads"],
        cfg["num_key_value_heads"],
        cfg["head_dim"],
        cfg["intermediate_dim"],
    )
    w = [_spec("pre_attention_norm/scale", (dim,)), _spec("attention/query/kernel", (heads, dim, head)),
         _spec("attention/key/kernel", (kv, dim, head)), _spec("attention/value/kernel", (kv, dim, head)),
         _spec("attention/attention_output/kernel", (heads, head, dim))]  # fmt: skip
    if cfg.get("use_post_attention_norm"):
        w.append(_spec("post_attention_norm/scale", (dim,)))
    w += [_spec("pre_ffw_norm/scale", (dim,)), _spec("ffw_gating/kernel", (dim, inner // 2)),
          _spec("ffw_gating_2/kernel", (dim, inner // 2)), _spec("ffw_linear/kernel", (inner // 2, dim))]  # fmt: skip
    if cfg.get("use_post_ffw_norm"):
        w.append(_spec("post_ffw_norm/scale", (dim,)))
    return LayerInfo([s], w)


@family.declare(H + "ViTPatchingAndEmbedding", onnx="hub:vit_patching_and_embedding")
def _vit_patching(cfg, shapes):
    s = first(shapes)
    hidden, patch = cfg["hidden_dim"], cfg["patch_size"]
    patch = (patch, patch) if isinstance(patch, int) else tuple(patch)
    size = cfg.get("image_size")
    size = (size, size) if isinstance(size, int) else tuple(size or (None, None))
    count = None if None in size else (size[0] // patch[0]) * (size[1] // patch[1])
    positions = None if count is None else count + int(bool(cfg.get("use_class_token", True)))
    channels = cfg.get("num_channels") or (s[-1] if s else None)
    w = [_spec("patch_embedding/kernel", (*patch, channels, hidden))]
    if cfg.get("use_patch_bias", True):
        w.append(_spec("patch_embedding/bias", (hidden,)))
    w.append(_spec("position_embedding/embeddings", (positions, hidden)))
    if cfg.get("use_class_token", True):
        w.insert(0, WeightSpec("class_token", (1, 1, hidden)))
    return LayerInfo([(s[0] if s else None, positions, hidden)], w)


@family.declare(H + "ViTEncoder", onnx="hub:vit_encoder")
def _vit_encoder(cfg, shapes):
    s = first(shapes)
    hidden, mlp = cfg["hidden_dim"], cfg["mlp_dim"]
    w: list[WeightSpec] = []
    for i in range(1, cfg["num_layers"] + 1):
        block = f"transformer_block_{i}"
        w += _norm(f"{block}/ln_1", hidden) + _attention(f"{block}/mha", hidden, cfg["num_heads"])
        w += _norm(f"{block}/ln_2", hidden)
        w += [_spec(f"{block}/mlp/dense_1/kernel", (hidden, mlp)), _spec(f"{block}/mlp/dense_1/bias", (mlp,))]
        w += [_spec(f"{block}/mlp/dense_2/kernel", (mlp, hidden)), _spec(f"{block}/mlp/dense_2/bias", (hidden,))]
    return LayerInfo([s], w + _norm("ln", hidden))


# KerasHub's MultiHeadAttention with a decoding cache: Keras's layer, weights and all, when called without one
family.declare(H + "CachedMultiHeadAttention", onnx="attention:cached_multi_head_attention")(multi_head_attention)


@family.declare(H + "RotaryEmbedding", onnx="decoders:rotary_embedding")
def _rotary(cfg, shapes):
    return LayerInfo([first(shapes)])
