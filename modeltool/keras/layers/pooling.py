"""Pooling: windowed and global, max and average, 1-3 spatial dims."""

from __future__ import annotations

from modeltool.keras.layers.spec import (
    Family,
    LayerInfo,
    as_tuple,
    assemble,
    channels_first,
    conv_len,
    first,
    spatial_dims,
)

family = Family("pooling")


def _pool(rank: int):
    def fn(cfg, shapes):
        s = first(shapes)
        cf = channels_first(cfg)
        pool = as_tuple(cfg.get("pool_size", 2), rank)
        st = cfg.get("strides")
        st = pool if st is None else as_tuple(st, rank)
        pad = cfg.get("padding", "valid")
        spatial, ch = spatial_dims(s, rank, cf)
        out = [conv_len(spatial[i], pool[i], st[i], pad) for i in range(rank)]
        return LayerInfo([assemble(s[0], out, ch, cf)])

    return fn


def _global_pool(rank: int):
    def fn(cfg, shapes):
        s = first(shapes)
        cf = channels_first(cfg)
        spatial, ch = spatial_dims(s, rank, cf)
        if cfg.get("keepdims"):
            return LayerInfo([assemble(s[0], [1] * rank, ch, cf)])
        return LayerInfo([(s[0], ch)])

    return fn


for _r in (1, 2, 3):
    for _kind in ("Max", "Average"):
        family.declare(f"{_kind}Pooling{_r}D", onnx="pooling:pooling",
                       tflite="pooling:pooling" if _r < 3 else None)(_pool(_r))  # fmt: skip
        family.declare(f"Global{_kind}Pooling{_r}D", onnx="pooling:global_pooling",
                       tflite="pooling:global_pooling")(_global_pool(_r))  # fmt: skip
        family.declare(f"{_kind}Pool{_r}D")(_pool(_r))  # aliases (the loader normalizes them before converting)
        family.declare(f"Global{_kind}Pool{_r}D")(_global_pool(_r))
