"""Merging layers: element-wise with broadcasting, concatenation, dot products."""

from __future__ import annotations

from modeltool.keras.layers.spec import (
    Family,
    LayerInfo,
    Shape,
)

family = Family("merge")


def _broadcast(shapes: list) -> Shape | None:
    if any(s is None for s in shapes):
        return None
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0]
        known = [d for d in dims if d is not None and d != 1]
        if known:
            out.append(known[0])
        elif any(d == 1 for d in dims) and all(d is not None for d in dims):
            out.append(1)
        else:
            out.append(None)
    return tuple(out)


@family.declare("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", onnx="merge:elementwise",
                tflite="merge:elementwise")
def _merge(cfg, shapes):
    return LayerInfo([_broadcast(shapes)])


@family.declare("Concatenate", onnx="merge:concatenate", tflite="merge:concatenate")
def _concat(cfg, shapes):
    if any(s is None for s in shapes):
        return LayerInfo([None])
    rank = len(shapes[0])
    axis = cfg.get("axis", -1) % rank
    out = list(shapes[0])
    for i in range(rank):
        if i == axis:
            dims = [s[i] for s in shapes]
            out[i] = None if any(d is None for d in dims) else sum(dims)
        elif out[i] is None:
            out[i] = next((s[i] for s in shapes if s[i] is not None), None)
    return LayerInfo([tuple(out)])


@family.declare("Dot", onnx="merge:dot", tflite="merge:dot")
def _dot(cfg, shapes):
    a, b = shapes[0], shapes[1]
    axes = cfg.get("axes", -1)
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    axes = [axes[0] % len(a), axes[1] % len(b)]
    out = [d for i, d in enumerate(a) if i != axes[0]] + [d for i, d in enumerate(b) if i not in (0, axes[1])]
    if len(out) == 1:
        out.append(1)
    return LayerInfo([tuple(out)])
