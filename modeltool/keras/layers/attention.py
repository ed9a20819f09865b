"""Attention layers."""

from __future__ import annotations

from modeltool.keras.layers.spec import (
    Family,
    LayerInfo,
    WeightSpec,
    first,
)

family = Family("attention")


@family.declare("MultiHeadAttention", onnx="attention:multi_head_attention", tflite="attention:multi_head_attention")
def multi_head_attention(cfg, shapes):
    """query/key/value projections and the output projection, each an EinsumDense sub-object
    (`query_dense`, ... in Keras 3 weight files; `mha/query/kernel` in legacy ones)."""
    q = first(shapes)
    v = shapes[1] if len(shapes) > 1 else q
    k = shapes[2] if len(shapes) > 2 else v
    heads, key_dim = cfg["num_heads"], cfg["key_dim"]
    value_dim = cfg.get("value_dim") or key_dim
    out_dim = cfg.get("output_shape") or (q[-1] if q is not None else None)
    if isinstance(out_dim, (list, tuple)):
        out_dim = out_dim[-1] if len(out_dim) == 1 else None
    bias = cfg.get("use_bias", True)
    w = []
    for name, sub, src, dim in (("query", "query_dense", q, key_dim), ("key", "key_dense", k, key_dim),
                                ("value", "value_dense", v, value_dim)):  # fmt: skip
        w.append(WeightSpec("kernel", (src[-1] if src is not None else None, heads, dim), k3=(sub, 0), prefix=name))
        if bias:
            w.append(WeightSpec("bias", (heads, dim), k3=(sub, 1), prefix=name))
    w.append(WeightSpec("kernel", (heads, value_dim, out_dim), k3=("output_dense", 0), prefix="attention_output"))
    if bias:
        w.append(WeightSpec("bias", (out_dim,), k3=("output_dense", 1), prefix="attention_output"))
    return LayerInfo([None if q is None else (*q[:-1], out_dim)], w)
