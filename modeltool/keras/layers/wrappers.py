"""Wrappers: TimeDistributed applies the layer it wraps to every timestep (sized through the table)."""

from __future__ import annotations

from modeltool.keras.layers.recurrent import inner_layer, nest
from modeltool.keras.layers.spec import (
    Family,
    LayerInfo,
    first,
    infer,
)

family = Family("wrappers")


@family.declare("TimeDistributed", onnx="wrappers:time_distributed", mask=True, tflite="wrappers:time_distributed")
def _time_distributed(cfg, shapes):
    s = first(shapes)
    cls, inner = inner_layer(cfg)
    inner_in = None if s is None else (s[0], *s[2:])
    info = infer(cls, inner, [inner_in])
    if info is None:
        return LayerInfo([None])
    outs = [None if o is None or s is None else (s[0], s[1], *o[1:]) for o in info.output_shapes]
    return LayerInfo(outs, [nest(w, "layer", inner.get("name", "")) for w in info.weights])
