"""Recurrent layers as ONNX's own recurrent ops: SimpleRNN -> RNN, LSTM -> LSTM, GRU -> GRU (also
the Keras 2 CuDNNLSTM/CuDNNGRU, which compute the same with tanh/sigmoid), and Bidirectional as one
op with direction 'bidirectional'.

Gate order: Keras's LSTM kernels are (i, f, c, o), ONNX's (i, o, f, c); GRU's (z, r, h) are the same
in both, `reset_after=True` being ONNX's `linear_before_reset=1` with the recurrent bias kept apart.
The activations are the layer's own (ONNX names them per gate), the Keras 1/2 hard sigmoid included.
Initial states (`initial_state=` or Keras 2's `[x, h, c]` call) feed the op; `return_state` returns
its final states. `go_backwards` outputs the steps in processing order, as Keras does.

Values between recurrent layers are held time-major (ONNX's sequence layout), so a stack of recurrent
layers has no transposes between them. `stateful=True` is refused (the state would have to persist
between calls).

A mask reaching a recurrent layer (Masking, Embedding(mask_zero=True)) may skip any step, not only
trailing ones (ONNX's `sequence_lens`), so the layer becomes an ONNX `Scan` over the time steps whose
body runs the same recurrent op on one step and keeps Keras's rule (`backend.rnn`): at a masked step
the states stay as they were and the output is the previous step's output, or zero with
`zero_output_for_mask` (which Bidirectional forces on when it returns sequences); the layer's last
output is the output of its last step. The body holds its own copy of the weights (a subgraph
reading outer initializers would hide them from the graph's pruning).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.exporters.direct.activations import RNN_ACTIVATIONS, activation_name
from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Context, Layer
from modeltool.exporters.direct.layout import to_perm
from modeltool.ir import Weight

#: Keras class -> (ONNX op, gates)
KINDS = {"SimpleRNN": ("RNN", 1), "LSTM": ("LSTM", 4), "GRU": ("GRU", 3), "CuDNNLSTM": ("LSTM", 4),
         "CuDNNGRU": ("GRU", 3)}  # fmt: skip
#: Keras LSTM gate blocks (i, f, c, o) in ONNX's order (i, o, f, c)
LSTM_ORDER = (0, 3, 1, 2)
TIME_MAJOR = (1, 0, 2)
INT64_MIN = np.iinfo(np.int64).min


def cell_config(cls: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The config a CuDNN layer computes with (the portable layer's), others as they are."""
    if cls == "CuDNNLSTM":
        return {**cfg, "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True}
    if cls == "CuDNNGRU":
        return {**cfg, "activation": "tanh", "recurrent_activation": "sigmoid", "reset_after": True, "use_bias": True}
    return cfg


def check(cls: str, cfg: dict[str, Any], layer: Layer) -> None:
    """Refuse what ONNX's recurrent ops cannot compute as Keras does."""
    if cfg.get("stateful"):
        raise layer.refuse("stateful=True: the state would have to persist between calls")
    for key in ("activation", "recurrent_activation"):
        if key == "recurrent_activation" and cls in ("SimpleRNN",):
            continue
        name = activation_name(cfg.get(key, "sigmoid" if key == "recurrent_activation" else "tanh"), layer.generation)
        if name not in RNN_ACTIVATIONS:
            raise layer.refuse(f"{key}={name!r} is not an activation ONNX's {KINDS[cls][0]} op computes")


def _activations(cls: str, cfg: dict[str, Any], generation: int) -> list[tuple[str, float | None, float | None]]:
    act = RNN_ACTIVATIONS[activation_name(cfg.get("activation", "tanh"), generation)]
    if cls == "SimpleRNN":
        return [act]
    gate = RNN_ACTIVATIONS[activation_name(cfg.get("recurrent_activation", "sigmoid"), generation)]
    return [gate, act, act] if KINDS[cls][0] == "LSTM" else [gate, act]


def keras_arrays(layer: Layer, cls: str, cfg: dict, weights: list[Weight], in_dim: int) -> list[np.ndarray]:
    """(kernel, recurrent_kernel, bias or None) of one direction in Keras 3's layout; CuDNN layouts
    converted here, where the CuDNN layer becomes an LSTM/GRU (as the rebuild converts them)."""
    from modeltool.keras.legacy_arrays import convert_layer_arrays

    units, (_, gates) = int(cfg["units"]), KINDS[cls]
    by_role = {w.role: np.asarray(w.value()) for w in weights}
    if "kernel" not in by_role or "recurrent_kernel" not in by_role:
        raise layer.refuse(f"expected kernel and recurrent_kernel, the file has {sorted(by_role)}")
    arrays = [by_role["kernel"], by_role["recurrent_kernel"]] + ([by_role["bias"]] if "bias" in by_role else [])
    if cls.startswith("CuDNN"):
        bias_shape = (2, gates * units) if cls == "CuDNNGRU" else (gates * units,)
        expected = [(in_dim, gates * units), (units, gates * units), bias_shape]
        arrays = convert_layer_arrays(cls.removeprefix("CuDNN"), arrays, expected, layer.path, "")
    kernel, recurrent = arrays[0], arrays[1]
    bias = arrays[2] if len(arrays) > 2 and cfg.get("use_bias", True) else None
    return [kernel.astype(np.float32), recurrent.astype(np.float32), None if bias is None else bias.astype(np.float32)]


def _onnx_arrays(cls: str, cfg: dict, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray | None,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """W (gates*H, F), R (gates*H, H), B (2*gates*H,) of one direction, in ONNX's gate order."""
    op, gates = KINDS[cls]
    units = recurrent.shape[0]
    input_bias = np.zeros(gates * units, np.float32)
    recurrent_bias = np.zeros(gates * units, np.float32)
    if bias is not None:
        if bias.ndim == 2:  # GRU reset_after: (input bias, recurrent bias)
            input_bias, recurrent_bias = bias[0], bias[1]
        else:
            input_bias = bias
    if op == "LSTM":

        def order(a: np.ndarray) -> np.ndarray:
            blocks = np.split(a, 4, axis=-1)
            return np.concatenate([blocks[i] for i in LSTM_ORDER], axis=-1)

        kernel, recurrent, input_bias, recurrent_bias = map(order, (kernel, recurrent, input_bias, recurrent_bias))
    return kernel.T, recurrent.T, np.concatenate([input_bias, recurrent_bias])


def direction_weights(layer: Layer) -> tuple[list[Weight], list[Weight]]:
    """A Bidirectional layer's weights split into (forward, backward)."""
    back = [w for w in layer.weights if "backward" in w.name]
    if back:
        return [w for w in layer.weights if "backward" not in w.name], back
    half = len(layer.weights) // 2
    return layer.weights[:half], layer.weights[half:]


def _op(ctx: Context, layer: Layer, cls: str, cfgs: list[dict], weight_sets: list[list[Weight]],
        x: Value, states: list[Value], direction: str) -> list[str]:  # fmt: skip
    """One ONNX recurrent op over time-major `x`; returns (Y, Y_h[, Y_c])."""
    op, gates = KINDS[cls]
    in_dim = x.shape[-1]
    if in_dim is None:
        raise layer.refuse("the feature size of the input is unknown")
    per_dir = [_onnx_arrays(cls, c, *keras_arrays(layer, cls, c, w, in_dim)) for c, w in zip(cfgs, weight_sets)]
    units = int(cfgs[0]["units"])
    if any(int(c["units"]) != units for c in cfgs):
        raise layer.refuse("forward and backward layers of different sizes")
    w, r, b = (np.stack([d[i] for d in per_dir]) for i in range(3))
    attrs = _attributes(cls, cfgs, layer.generation, units, direction)
    n_states = 2 if op == "LSTM" else 1
    initial = [""] * n_states
    if states:
        if len(states) != n_states * len(cfgs):
            raise layer.refuse(f"{len(states)} initial states for {len(cfgs)} direction(s) of {op}")
        for k in range(n_states):
            parts = [ctx.unsqueeze(states[d * n_states + k].name, [0]) for d in range(len(cfgs))]
            initial[k] = parts[0] if len(parts) == 1 else ctx.op("Concat", parts, axis=0)
    inputs = [x.name, ctx.const(w, "W"), ctx.const(r, "R"), ctx.const(b, "B"), "", *initial]
    while inputs and inputs[-1] == "":
        inputs.pop()
    return ctx.ops(op, inputs, 1 + n_states, **attrs)


def _attributes(cls: str, cfgs: list[dict], generation: int, units: int, direction: str) -> dict[str, Any]:
    """The ONNX recurrent op's attributes for these directions' configs."""
    acts = [a for c in cfgs for a in _activations(cls, c, generation)]
    attrs: dict[str, Any] = {"hidden_size": units, "direction": direction, "activations": [a[0] for a in acts]}
    alphas = [a[1] for a in acts if a[1] is not None]
    betas = [a[2] for a in acts if a[2] is not None]
    if alphas:
        attrs["activation_alpha"] = [float(a) for a in alphas]
    if betas:
        attrs["activation_beta"] = [float(v) for v in betas]
    if KINDS[cls][0] == "GRU":
        attrs["linear_before_reset"] = int(bool(cfgs[0].get("reset_after", True)))
    return attrs


def _time_major(ctx: Context, layer: Layer, x: Value) -> Value:
    if x.rank != 3:
        raise layer.refuse(f"a rank-{x.rank} input (recurrent layers take (batch, time, features))")
    return to_perm(ctx, x, TIME_MAJOR)


def _masked(ctx: Context, layer: Layer, cls: str, cfg: dict, weights: list[Weight], x: Value, states: list[Value],
            reverse: bool, aligned: bool, zero_output: bool) -> tuple[str, str, list[str]]:  # fmt: skip
    """One direction of a masked recurrent layer as a Scan over time-major `x`: (outputs (T, N, H),
    last output (N, H), final states (N, H) each). `reverse` processes the last step first (Keras's
    go_backwards); `aligned` stacks the outputs by input step instead of processing order."""
    helper, tensor = ctx.builder.onnx.helper, ctx.builder.onnx.TensorProto
    op, _ = KINDS[cls]
    in_dim, units = x.shape[-1], int(cfg["units"])
    if in_dim is None:
        raise layer.refuse("the feature size of the input is unknown")
    w, r, b = _onnx_arrays(cls, cfg, *keras_arrays(layer, cls, cfg, weights, in_dim))
    n_states = 2 if op == "LSTM" else 1
    if states and len(states) != n_states:
        raise layer.refuse(f"{len(states)} initial states for {op}")
    shape = ctx.op("Shape", [x.name])
    batch = ctx.op("Gather", [shape, ctx.ints([1])], axis=0)
    dims = ctx.op("Concat", [batch, ctx.ints([units])], axis=0)
    zeros = ctx.op("ConstantOfShape", [dims], value=helper.make_tensor("zero", tensor.FLOAT, [1], [0.0]))
    initial = [s.name for s in states] if states else [zeros] * n_states
    mask = ctx.op("Transpose", [x.mask], perm=[1, 0])  # (T, N), as the steps are scanned

    def info(name: str, elem: int, dims: list) -> Any:
        return helper.make_tensor_value_info(name, elem, dims)

    numpy_helper = ctx.builder.onnx.numpy_helper
    inits = [numpy_helper.from_array(a, n) for a, n in ((w[None], "W"), (r[None], "R"), (b[None], "B"),
             (np.array([0], np.int64), "axis0"), (np.array([1], np.int64), "axis1"), (np.float32(0), "zero"))]
    state_in = ["h_in", "c_in"][:n_states]
    nodes = [helper.make_node("Unsqueeze", ["x_t", "axis0"], ["x_step"])]
    nodes += [helper.make_node("Unsqueeze", [s, "axis0"], [f"{s}_step"]) for s in state_in]
    outs = ["Y", "Y_h", "Y_c"][: 1 + n_states]
    nodes.append(helper.make_node(op, ["x_step", "W", "R", "B", "", *(f"{s}_step" for s in state_in)], outs,
                                  **_attributes(cls, [cfg], layer.generation, units, "forward")))  # fmt: skip
    nodes.append(helper.make_node("Unsqueeze", ["m_t", "axis1"], ["keep"]))
    state_out = ["h_out", "c_out"][:n_states]
    for new, old, out in zip(outs[1:], state_in, state_out):
        nodes.append(helper.make_node("Squeeze", [new, "axis0"], [f"{new}_new"]))
        nodes.append(helper.make_node("Where", ["keep", f"{new}_new", old], [out]))
    nodes.append(helper.make_node("Where", ["keep", "Y_h_new", "zero" if zero_output else "last_in"], ["last_out"]))
    nodes.append(helper.make_node("Identity", ["last_out"], ["y_t"]))
    body = helper.make_graph(
        nodes, f"{layer.path}_step",
        [info(n, tensor.FLOAT, [None, units]) for n in (*state_in, "last_in")]
        + [info("x_t", tensor.FLOAT, [None, in_dim]), info("m_t", tensor.BOOL, [None])],
        [info(n, tensor.FLOAT, [None, units]) for n in (*state_out, "last_out", "y_t")], inits,
    )  # fmt: skip
    scanned = ctx.ops("Scan", [*initial, zeros, x.name, mask], n_states + 2, body=body, num_scan_inputs=2,
                      scan_input_directions=[1, 1] if reverse else None,
                      scan_output_directions=[1] if reverse and aligned else None)  # fmt: skip
    return scanned[-1], scanned[n_states], scanned[:n_states]


def _masked_recurrent(ctx: Context, layer: Layer, cls: str, cfg: dict, x: Value, states: list[Value]) -> list[Value]:
    """A recurrent layer a mask reaches (see the module docstring)."""
    y, last, finals = _masked(ctx, layer, cls, cfg, layer.weights, x, states, bool(cfg.get("go_backwards")),
                              False, bool(cfg.get("zero_output_for_mask")))  # fmt: skip
    units, batch, steps = int(cfg["units"]), x.shape[0], x.shape[1]
    if cfg.get("return_sequences"):
        result = Value(y, (batch, steps, units), "float32", TIME_MAJOR, mask=x.mask)
    else:
        result = Value(last, (batch, units), "float32")
    extra = [Value(s, (batch, units), "float32") for s in finals] if cfg.get("return_state") else []
    return [result, *extra]


def recurrent(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    cls = layer.cls
    cfg = cell_config(cls, layer.config)
    check(cls, cfg, layer)
    x = _time_major(ctx, layer, inputs[0])
    if x.mask is not None:
        return _masked_recurrent(ctx, layer, cls, cfg, x, inputs[1:])
    backwards = bool(cfg.get("go_backwards"))
    outs = _op(ctx, layer, cls, [cfg], [layer.weights], x, inputs[1:], "reverse" if backwards else "forward")
    units, batch, steps = int(cfg["units"]), x.shape[0], x.shape[1]
    if cfg.get("return_sequences"):
        y = ctx.squeeze(outs[0], [1])
        if backwards:  # Keras keeps the processing order; ONNX aligns outputs with the input steps
            y = ctx.op("Slice", [y, ctx.ints([-1]), ctx.ints([INT64_MIN]), ctx.ints([0]), ctx.ints([-1])])
        result = Value(y, (batch, steps, units), "float32", TIME_MAJOR)
    else:
        result = Value(ctx.squeeze(outs[1], [0]), (batch, units), "float32")
    if not cfg.get("return_state"):
        return [result]
    return [result] + [Value(ctx.squeeze(s, [0]), (batch, units), "float32") for s in outs[1:]]


def bidirectional_configs(layer: Layer) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(class, forward config, backward config) of a Bidirectional layer, refused where Keras's
    pairing is not the plain one (another class backward, a forward layer going backwards)."""
    cfg = layer.config
    inner = cfg.get("layer") or {}
    cls = inner.get("class_name")
    if cls not in KINDS:
        raise layer.refuse(f"Bidirectional around {cls}")
    forward = cell_config(cls, inner.get("config") or {})
    backward_entry = cfg.get("backward_layer")
    backward = cell_config(cls, backward_entry.get("config") or {}) if isinstance(backward_entry, dict) else forward
    if isinstance(backward_entry, dict) and backward_entry.get("class_name") != cls:
        raise layer.refuse("forward and backward layers of different classes")
    if forward.get("go_backwards"):
        raise layer.refuse("a forward layer with go_backwards=True")
    return cls, forward, backward


def bidirectional(ctx: Context, layer: Layer, inputs: list[Value]) -> list[Value]:
    cfg = layer.config
    cls, forward, backward = bidirectional_configs(layer)
    check(cls, forward, layer)
    check(cls, backward, layer)
    x = _time_major(ctx, layer, inputs[0])
    fw, bw = direction_weights(layer)
    if x.mask is not None:
        return _masked_bidirectional(ctx, layer, cls, (forward, backward), (fw, bw), x, inputs[1:])
    outs = _op(ctx, layer, cls, [forward, backward], [fw, bw], x, inputs[1:], "bidirectional")
    units, batch, steps = int(forward["units"]), x.shape[0], x.shape[1]
    mode = cfg.get("merge_mode", "concat")
    if forward.get("return_sequences"):
        merged = _merge_sequences(ctx, layer, outs[0], mode, (batch, steps, units))
    else:
        merged = _merge_last(ctx, layer, outs[1], mode, (batch, units))
    if not forward.get("return_state"):
        return merged
    states = []
    for direction in (0, 1):
        for s in outs[1:]:
            picked = ctx.op("Gather", [s, ctx.ints(direction)], axis=0)
            states.append(Value(picked, (batch, units), "float32"))
    return merged + states


def _masked_bidirectional(ctx: Context, layer: Layer, cls: str, cfgs: tuple[dict, dict],
                          weights: tuple[list[Weight], list[Weight]], x: Value,
                          states: list[Value]) -> list[Value]:  # fmt: skip
    """Bidirectional over a masked input: one Scan per direction, the backward one's outputs stacked by
    input step (as Keras reverses them back), merged as the unmasked op's outputs are."""
    forward = cfgs[0]
    sequences = bool(forward.get("return_sequences"))
    half = len(states) // 2
    runs = [_masked(ctx, layer, cls, cfg, w, x, list(s), reverse, True, sequences)
            for cfg, w, s, reverse in zip(cfgs, weights, (states[:half], states[half:]), (False, True))]  # fmt: skip
    units, batch, steps = int(forward["units"]), x.shape[0], x.shape[1]
    mode = layer.config.get("merge_mode", "concat")
    if sequences:
        y = ctx.op("Concat", [ctx.unsqueeze(run[0], [1]) for run in runs], axis=1)  # (T, 2, N, H)
        merged = [v.but(mask=x.mask) for v in _merge_sequences(ctx, layer, y, mode, (batch, steps, units))]
    else:
        last = ctx.op("Concat", [ctx.unsqueeze(run[1], [0]) for run in runs], axis=0)  # (2, N, H)
        merged = _merge_last(ctx, layer, last, mode, (batch, units))
    if not forward.get("return_state"):
        return merged
    return merged + [Value(s, (batch, units), "float32") for run in runs for s in run[2]]


def _merge_sequences(ctx: Context, layer: Layer, y: str, mode: str | None, shape: tuple) -> list[Value]:
    """Y (T, 2, N, H) merged the Keras way, kept time-major."""
    batch, steps, units = shape
    if mode == "concat":
        moved = ctx.op("Transpose", [y], perm=[0, 2, 1, 3])
        return [Value(ctx.reshape(moved, [0, 0, -1]), (batch, steps, 2 * units), "float32", TIME_MAJOR)]
    if mode in ("sum", "ave", "mul"):
        op = {"sum": "ReduceSum", "ave": "ReduceMean", "mul": "ReduceProd"}[mode]
        return [Value(ctx.reduce(op, y, [1], False), shape, "float32", TIME_MAJOR)]
    if mode is None:
        return [Value(ctx.op("Gather", [y, ctx.ints(d)], axis=1), shape, "float32", TIME_MAJOR) for d in (0, 1)]
    raise layer.refuse(f"merge_mode={mode!r}")


def _merge_last(ctx: Context, layer: Layer, y_h: str, mode: str | None, shape: tuple) -> list[Value]:
    """Y_h (2, N, H) merged the Keras way."""
    batch, units = shape
    if mode == "concat":
        moved = ctx.op("Transpose", [y_h], perm=[1, 0, 2])
        return [Value(ctx.reshape(moved, [0, -1]), (batch, 2 * units), "float32")]
    if mode in ("sum", "ave", "mul"):
        op = {"sum": "ReduceSum", "ave": "ReduceMean", "mul": "ReduceProd"}[mode]
        return [Value(ctx.reduce(op, y_h, [0], False), shape, "float32")]
    if mode is None:
        return [Value(ctx.op("Gather", [y_h, ctx.ints(d)], axis=0), shape, "float32") for d in (0, 1)]
    raise layer.refuse(f"merge_mode={mode!r}")
