"""TimeDistributed: the wrapped layer applied to every step.

A Dense (any layer acting on the last axis only) is applied to the whole sequence at once, which is
the same computation; any other layer runs on the steps folded into the batch, `(N*T, ...)`, and the
result is unfolded back to `(N, T, ...)`.
"""

from __future__ import annotations

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context, Layer
from modeltool.exporters.direct.layout import logical
from modeltool.keras import layers as keras_layers

#: wrapped layers that act on the last axis only: applied to the sequence as it is
LAST_AXIS = {"Dense", "Activation", "Dropout", "LayerNormalization", "ReLU", "LeakyReLU", "ELU", "Softmax"}


def wrapped(layer: Layer, input_shape: tuple) -> tuple[Layer, bool]:
    """The layer a TimeDistributed wraps, as a layer call on `input_shape` (its weights, its output
    shapes), and whether it acts on the last axis only (then it applies to the whole sequence)."""
    inner = layer.config.get("layer") or {}
    cls, cfg = inner.get("class_name"), inner.get("config") or {}
    info = keras_layers.infer(cls, cfg, [input_shape])
    call = Layer(layer.path, layer.weights_path, cls, cfg, layer.generation, layer.weights,
                 info.output_shapes if info else [])  # fmt: skip
    return call, cls in LAST_AXIS and (cls != "LayerNormalization" or cfg.get("axis", -1) in (-1, [-1]))


def time_distributed(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    whole, last_axis = wrapped(layer, x.shape)
    if last_axis:
        return ctx.dispatch(whole, [x])
    cls = whole.cls
    x = logical(ctx, x)
    steps = x.shape[1]
    inner_shape = (None, *x.shape[2:])
    if any(d is None for d in x.shape[2:]):
        raise layer.refuse("a wrapped layer over steps of unknown shape")
    folded = Value(ctx.reshape(x, [-1, *x.shape[2:]]), inner_shape, x.dtype)
    outs = ctx.dispatch(wrapped(layer, inner_shape)[0], [folded])
    if len(outs) != 1:
        raise layer.refuse(f"a wrapped {cls} with {len(outs)} outputs")
    y = logical(ctx, outs[0])
    tail = list(y.shape[1:])
    if any(d is None for d in tail):
        raise layer.refuse(f"the wrapped {cls}'s output shape is unknown")
    if steps is not None:
        name = ctx.reshape(y, [-1, int(steps), *tail])
    else:
        head = ctx.op("Slice", [ctx.op("Shape", [x]), ctx.ints([0]), ctx.ints([2])])
        name = ctx.op("Reshape", [y, ctx.op("Concat", [head, ctx.ints(tail)], axis=0)])
    return [Value(name, (x.shape[0], steps, *tail), y.dtype)]
