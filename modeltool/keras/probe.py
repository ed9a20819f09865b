"""What Keras itself computes for an architecture whose custom layers modeltool cannot size from
their configs: output shapes and parameter counts, read off a Keras 3 model built (without weights)
with the user's `--custom-objects` module. `inspect` stays TensorFlow-free without that module;
with it, it shows the figures `model.summary()` would. Imports Keras (and TensorFlow)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from modeltool.ir import Model, TensorSpec


def fill_from_keras(model: Model, custom_objects: dict[str, Any], *, unsafe: bool = False) -> int:
    """Unknown output shapes and parameter counts of `model`'s layers (nested ones included) filled
    from Keras; returns how many layers got figures they lacked."""
    from modeltool.keras.rebuild import build

    if model.config is None or model.graph is None or model.graph.level != "layer":
        return 0
    native = build(model, custom_objects=custom_objects, unsafe=unsafe, with_weights=False)
    layers = dict(_walk(native))
    filled = 0
    for path, node in model.graph.walk():
        layer = layers.get(path)
        if layer is None:
            continue
        changed = False
        shapes = _output_shapes(layer)
        if shapes and (not node.output_shapes or any(_unknown(s) for s in node.output_shapes)):
            node.output_shapes, changed = shapes, True
        if node.params is None and layer.built:
            node.params = int(layer.count_params())
            node.trainable_params = int(sum(int(_size(w.shape)) for w in layer.trainable_weights))
            changed = True
        filled += changed
    outs = getattr(native, "outputs", None) or []
    if len(outs) == len(model.graph.outputs):
        model.graph.outputs = [TensorSpec(s.name, tuple(t.shape), s.dtype) for s, t in zip(model.graph.outputs, outs)]
    return filled


def _walk(native: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for layer in getattr(native, "layers", []):
        path = f"{prefix}{layer.name}"
        yield path, layer
        if layer.__class__.__name__ in ("Functional", "Sequential", "Model") and hasattr(layer, "layers"):
            yield from _walk(layer, path + "/")


def _output_shapes(layer: Any) -> list[tuple] | None:
    try:
        out = layer.output
    except (AttributeError, ValueError, RuntimeError):  # shared layers: several outputs; first call's
        nodes = getattr(layer, "_inbound_nodes", None) or []
        if not nodes:
            return None
        out = nodes[0].output_tensors
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [tuple(t.shape) for t in outs]


def _unknown(shape: Any) -> bool:
    return shape is None


def _size(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
