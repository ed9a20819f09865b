"""TimeDistributed as TFLite ops: a layer acting on the last axis only is applied to the whole
sequence at once (the same computation); any other runs on the steps folded into the batch,
`(N*T, ...)` by a RESHAPE, and is unfolded back (the number of steps must be known)."""

from __future__ import annotations

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.direct.wrappers import LAST_AXIS
from modeltool.exporters.litert.context import LiteContext
from modeltool.keras import layers as keras_layers


def time_distributed(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    inner = layer.config.get("layer") or {}
    cls, cfg = inner.get("class_name"), inner.get("config") or {}
    x = inputs[0]
    if cls in LAST_AXIS and (cls != "LayerNormalization" or cfg.get("axis", -1) in (-1, [-1])):
        shapes = keras_layers.infer(cls, cfg, [x.shape])
        wrapped = Layer(layer.path, layer.weights_path, cls, cfg, layer.generation, layer.weights,
                        shapes.output_shapes if shapes else [])  # fmt: skip
        return ctx.dispatch(wrapped, [x])
    steps = x.shape[1]
    if steps is None or any(d is None for d in x.shape[2:]):
        raise layer.refuse("a wrapped layer over steps of unknown number or shape")
    inner_shape = (None, *x.shape[2:])
    info = keras_layers.infer(cls, cfg, [inner_shape])
    folded = ctx.reshape(x, inner_shape)
    wrapped = Layer(layer.path, layer.weights_path, cls, cfg, layer.generation, layer.weights,
                    info.output_shapes if info else [])  # fmt: skip
    outs = ctx.dispatch(wrapped, [folded])
    if len(outs) != 1:
        raise layer.refuse(f"a wrapped {cls} with {len(outs)} outputs")
    tail = tuple(outs[0].shape[1:])
    if any(d is None for d in tail):
        raise layer.refuse(f"the wrapped {cls}'s output shape is unknown")
    return [ctx.reshape(outs[0], (x.shape[0], int(steps), *tail))]
