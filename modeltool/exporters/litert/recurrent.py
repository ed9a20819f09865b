"""Recurrent layers as TFLite builtin ops, unrolled over their fixed number of steps: SimpleRNN, LSTM
and GRU (both `reset_after` forms, and the Keras 2 CuDNN variants), alone or in Bidirectional.

Unrolled rather than TFLite's fused sequence ops: the fused LSTM keeps its state in variable tensors
that persist between invocations (a Keras LSTM starts every call from zeros or its `initial_state`),
computes its gates with the logistic function only (Keras 1/2 files often use the hard sigmoid), and
there is no fused GRU. Unrolled, every gate is the layer's own activation, `go_backwards`,
`return_state` and initial states are Keras's, and each step is a handful of builtin ops: the input
projection for all steps in one FULLY_CONNECTED, then per step the recurrent projection, one SPLIT
into gates, the activations and the state update. Outputs keep Keras's processing order
(`go_backwards` returns steps last to first; Bidirectional puts its backward outputs back in input
order). A mask reaching the layer (Embedding(mask_zero=True), Masking) is followed per step as
Keras's `backend.rnn` follows it: states kept and the previous output repeated (zeros in
Bidirectional's sequences) at a masked step. `stateful` and unknown step counts are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.exporters.direct.activations import activation_name
from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.direct.recurrent import (
    KINDS,
    bidirectional_configs,
    cell_config,
    direction_weights,
    keras_arrays,
)
from modeltool.exporters.litert.activations import ELEMENTWISE
from modeltool.exporters.litert.context import LiteContext, options
from modeltool.ir import Weight


def _check(layer: Layer, cfg: dict[str, Any], x: Value) -> None:
    if cfg.get("stateful"):
        raise layer.refuse("stateful=True: the state would have to persist between calls")
    if cfg.get("time_major"):
        raise layer.refuse("time_major=True is not lowered")
    if x.rank != 3 or x.shape[1] is None:
        raise layer.refuse("the number of steps is unknown (fix it with --input-shape)")
    for key, default in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        name = activation_name(cfg.get(key, default), layer.generation)
        if name not in ELEMENTWISE:
            raise layer.refuse(f"{key}={name!r} has no TFLite lowering")


def _act(ctx: LiteContext, layer: Layer, cfg: dict, key: str, x: Value) -> Value:
    default = "tanh" if key == "activation" else "sigmoid"
    return ELEMENTWISE[activation_name(cfg.get(key, default), layer.generation)](ctx, x)


def _fc(ctx: LiteContext, x: Value, kernel: np.ndarray, bias: np.ndarray | None, role: str) -> Value:
    """x @ kernel (+ bias) over the last axis."""
    units = kernel.shape[1]
    b = bias if bias is not None else np.zeros(units, np.float32)
    return ctx.op("FULLY_CONNECTED", [x, ctx.const(np.ascontiguousarray(kernel.T), role),
                                      ctx.const(b.astype(np.float32), f"{role}_bias")],
                  (*x.shape[:-1], units), opts=options("FullyConnectedOptions", keepNumDims=x.rank > 2))  # fmt: skip


def _split(ctx: LiteContext, x: Value, n: int) -> list[Value]:
    size = x.shape[-1] // n
    return ctx.ops("SPLIT", [ctx.ints(np.int32(x.rank - 1)), x], [(*x.shape[:-1], size)] * n,
                   opts=options("SplitOptions", numSplits=n))  # fmt: skip


def _step_masks(ctx: LiteContext, x: Value) -> list[Value] | None:
    """The mask reaching the layer as one (batch, 1) float column per step, or None."""
    if x.mask is None:
        return None
    batch, steps = x.shape[0], int(x.shape[1])
    mask = ctx.op("CAST", [ctx.by_name[x.mask]], (batch, steps), "float32")
    columns = ctx.ops("UNPACK", [mask], [(batch,)] * steps, opts=options("UnpackOptions", num=steps, axis=1))
    return [ctx.reshape(c, (batch, 1)) for c in columns]


def _blend(ctx: LiteContext, old: Value | None, new: Value, keep: Value) -> Value:
    """new where the step is kept, old where it is masked (old None: zeros)."""
    if old is None:
        return ctx.binary("MUL", new, keep)
    return ctx.binary("ADD", old, ctx.binary("MUL", ctx.binary("SUB", new, old), keep, new.shape))


def _decided(ctx: LiteContext, layer: Layer, steps: int, masked: bool) -> None:
    ctx.decisions.append(
        f"{layer.path} ({layer.cls}): unrolled over its {steps} steps{', following its mask' if masked else ''} "
        "(TFLite's fused sequence ops keep their state between invocations and gate with the logistic only)"
    )


def _run(ctx: LiteContext, layer: Layer, cls: str, cfg: dict, weights: list[Weight], x: Value, states: list[Value],
         backwards: bool, zero_output: bool = False) -> tuple[list[Value], list[Value]]:  # fmt: skip
    """(outputs per step in processing order, final states) of one direction. Where a mask reaches
    the layer, Keras's rule (`backend.rnn`): at a masked step the states stay as they were and the
    output is the previous step's output, or zeros with `zero_output`."""
    kernel, recurrent, bias = keras_arrays(layer, cls, cfg, weights, int(x.shape[-1]))
    gates, units = KINDS[cls][1], recurrent.shape[0]
    input_bias, recurrent_bias = (bias[0], bias[1]) if bias is not None and bias.ndim == 2 else (bias, None)
    batch, steps = x.shape[0], int(x.shape[1])
    projected = _fc(ctx, x, kernel, input_bias, "kernel")
    per_step = ctx.ops("UNPACK", [projected], [(batch, gates * units)] * steps,
                       opts=options("UnpackOptions", num=steps, axis=1))  # fmt: skip
    h = states[0] if states else None
    c = states[1] if len(states) > 1 else None
    masks = _step_masks(ctx, x)
    outputs: list[Value] = []
    for t in reversed(range(steps)) if backwards else range(steps):
        h_prev, c_prev = h, c
        z = per_step[t]
        if cls.endswith("LSTM"):
            if h is not None:
                z = ctx.binary("ADD", z, _fc(ctx, h, recurrent, None, "recurrent_kernel"))
            i, f, g, o = _split(ctx, z, 4)
            i, f, o = (_act(ctx, layer, cfg, "recurrent_activation", v) for v in (i, f, o))
            update = ctx.binary("MUL", i, _act(ctx, layer, cfg, "activation", g))
            c = update if c is None else ctx.binary("ADD", ctx.binary("MUL", f, c), update)
            h = ctx.binary("MUL", o, _act(ctx, layer, cfg, "activation", c))
        elif cls.endswith("GRU"):
            h = _gru_step(ctx, layer, cfg, z, h, recurrent, recurrent_bias, units)
        else:
            if h is not None:
                z = ctx.binary("ADD", z, _fc(ctx, h, recurrent, None, "recurrent_kernel"))
            h = _act(ctx, layer, cfg, "activation", z)
        assert h is not None
        if masks is None:
            outputs.append(h)
            continue
        keep = masks[t]
        new_h = h
        h = _blend(ctx, h_prev, new_h, keep)
        if c is not None:
            c = _blend(ctx, c_prev, c, keep)
        previous = None if zero_output or not outputs else outputs[-1]
        outputs.append(_blend(ctx, previous, new_h, keep))
    assert h is not None
    return outputs, [h] + ([c] if cls.endswith("LSTM") and c is not None else [])


def _gru_step(ctx: LiteContext, layer: Layer, cfg: dict, z: Value, h: Value | None, recurrent: np.ndarray,
              recurrent_bias: np.ndarray | None, units: int) -> Value:  # fmt: skip
    """Keras's GRU: z and r gates, candidate with the reset applied after the recurrent projection
    (`reset_after`, a bias of its own) or before it."""
    xz, xr, xh = _split(ctx, z, 3)
    reset_after = recurrent_bias is not None or bool(cfg.get("reset_after", layer.generation >= 2))
    if h is None:  # zero state: the recurrent projection is its bias alone
        if recurrent_bias is not None:
            bz, br, bh = np.split(recurrent_bias, 3)
            xz, xh = ctx.binary("ADD", xz, ctx.const(bz, "bias_z")), xh
            r = _act(ctx, layer, cfg, "recurrent_activation", ctx.binary("ADD", xr, ctx.const(br, "bias_r")))
            xh = ctx.binary("ADD", xh, ctx.binary("MUL", r, ctx.const(bh, "bias_h")))
        gate = _act(ctx, layer, cfg, "recurrent_activation", xz)
        candidate = _act(ctx, layer, cfg, "activation", xh)
        keep = ctx.op("SUB", [ctx.scalar(1.0), gate], gate.shape, opts=options("SubOptions"))
        return ctx.binary("MUL", keep, candidate)
    if reset_after:
        rz, rr, rh = _split(ctx, _fc(ctx, h, recurrent, recurrent_bias, "recurrent_kernel"), 3)
        gate = _act(ctx, layer, cfg, "recurrent_activation", ctx.binary("ADD", xz, rz))
        r = _act(ctx, layer, cfg, "recurrent_activation", ctx.binary("ADD", xr, rr))
        candidate = _act(ctx, layer, cfg, "activation", ctx.binary("ADD", xh, ctx.binary("MUL", r, rh)))
    else:
        uz, ur, uh = np.split(recurrent, 3, axis=1)
        gate = _act(ctx, layer, cfg, "recurrent_activation", ctx.binary("ADD", xz, _fc(ctx, h, uz, None, "kernel_z")))
        r = _act(ctx, layer, cfg, "recurrent_activation", ctx.binary("ADD", xr, _fc(ctx, h, ur, None, "kernel_r")))
        candidate = _act(ctx, layer, cfg, "activation",
                         ctx.binary("ADD", xh, _fc(ctx, ctx.binary("MUL", r, h), uh, None, "kernel_h")))  # fmt: skip
    # h = z * h_prev + (1 - z) * candidate = candidate + z * (h_prev - candidate)
    return ctx.binary("ADD", candidate, ctx.binary("MUL", gate, ctx.binary("SUB", h, candidate)))


def _sequence(ctx: LiteContext, outputs: list[Value]) -> Value:
    batch, units = outputs[0].shape
    return ctx.op("PACK", list(outputs), (batch, len(outputs), units),
                  opts=options("PackOptions", valuesCount=len(outputs), axis=1))  # fmt: skip


def recurrent(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    cls = layer.cls
    cfg = cell_config(cls, layer.config)
    x = inputs[0]
    _check(layer, cfg, x)
    _decided(ctx, layer, int(x.shape[1]), x.mask is not None)
    outputs, states = _run(ctx, layer, cls, cfg, layer.weights, x, list(inputs[1:]), bool(cfg.get("go_backwards")),
                           bool(cfg.get("zero_output_for_mask")))  # fmt: skip
    result = _sequence(ctx, outputs).but(mask=x.mask) if cfg.get("return_sequences") else outputs[-1]
    return [result] + (states if cfg.get("return_state") else [])


def bidirectional(ctx: LiteContext, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    cls, forward, backward = bidirectional_configs(layer)
    x = inputs[0]
    _check(layer, forward, x)
    _check(layer, backward, x)
    _decided(ctx, layer, int(x.shape[1]), x.mask is not None)
    fw, bw = direction_weights(layer)
    initial = list(inputs[1:])
    half = len(initial) // 2
    sequences = bool(forward.get("return_sequences"))  # Bidirectional zeroes masked outputs then
    f_out, f_states = _run(ctx, layer, cls, forward, fw, x, initial[:half], False, sequences)
    b_out, b_states = _run(ctx, layer, cls, backward, bw, x, initial[half:], True, sequences)
    if forward.get("return_sequences"):
        a, b = _sequence(ctx, f_out), _sequence(ctx, list(reversed(b_out)))  # backward put back in input order
    else:
        a, b = f_out[-1], b_out[-1]
    mode = cfg.get("merge_mode", "concat")
    if mode == "concat":
        merged = [ctx.op("CONCATENATION", [a, b], (*a.shape[:-1], 2 * a.shape[-1]),
                         opts=options("ConcatenationOptions", axis=a.rank - 1))]  # fmt: skip
    elif mode in ("sum", "ave"):
        total = ctx.binary("ADD", a, b)
        merged = [ctx.binary("MUL", total, ctx.scalar(0.5)) if mode == "ave" else total]
    elif mode == "mul":
        merged = [ctx.binary("MUL", a, b)]
    elif mode is None:
        merged = [a, b]
    else:
        raise layer.refuse(f"merge_mode={mode!r}")
    if sequences and x.mask is not None:
        merged = [m.but(mask=x.mask) for m in merged]
    return merged + (f_states + b_states if forward.get("return_state") else [])
