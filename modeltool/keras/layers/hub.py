"""KerasHub's building blocks (`keras_hub.layers`): embeddings and transformer blocks.

A KerasHub backbone's file holds only its constructor arguments; modeltool sees these layers when the
installed library builds the backbone's functional graph (`keras/expand.py`), or in a user's own
functional model that calls them. They are declared like Keras's own layers (shapes, weights, the
direct ONNX converter), keyed `keras_hub>Class` so that a user's class of the same name is not
taken for them. Weight roles are paths inside the block (`self_attention_layer/query/kernel`), as
Keras names its variables.
"""

from __future__ import annotations

from modeltool.keras.layers.spec import Family, LayerInfo, WeightSpec, first

family = Family("hub")
H = "keras_hub>"


def _spec(path: str, shape: tuple, trainable: bool = True) -> WeightSpec:
    prefix, _, role = path.rpartition("/")
    return WeightSpec(role, shape, trainable, (prefix, 0 if role in ("kernel", "gamma", "embeddings") else 1), prefix)


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
