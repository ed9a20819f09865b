"""TimeDistributed as TFLite ops: a layer acting on the last axis only is applied to the whole
sequence at once (the same computation); any other runs on the steps folded into the batch,
`(N*T, ...)` by a RESHAPE, and is unfolded back (the number of steps must be known)."""

from __future__ import annotations

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.direct.wrappers import wrapped
from modeltool.exporters.litert.context import LiteContext


def time_distributed(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    whole, last_axis = wrapped(layer, x.shape)
    if last_axis:
        return ctx.dispatch(whole, [x])
    steps = x.shape[1]
    if steps is None or any(d is None for d in x.shape[2:]):
        raise layer.refuse("a wrapped layer over steps of unknown number or shape")
    inner_shape = (None, *x.shape[2:])
    outs = ctx.dispatch(wrapped(layer, inner_shape)[0], [ctx.reshape(x, inner_shape)])
    if len(outs) != 1:
        raise layer.refuse(f"a wrapped {whole.cls} with {len(outs)} outputs")
    tail = tuple(outs[0].shape[1:])
    if any(d is None for d in tail):
        raise layer.refuse(f"the wrapped {whole.cls}'s output shape is unknown")
    return [ctx.reshape(outs[0], (x.shape[0], int(steps), *tail))]
