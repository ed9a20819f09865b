"""Recurrent layers (SimpleRNN, LSTM, GRU and the CuDNN ones) and Bidirectional.

Bidirectional sizes the layers it wraps through the table (`spec.infer`)."""

from __future__ import annotations

from modeltool.keras.layers.spec import (
    Family,
    LayerInfo,
    Shape,
    WeightSpec,
    first,
    infer,
)

family = Family("recurrent")

RNN_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3, "CuDNNLSTM": 4, "CuDNNGRU": 3}
CELL_NAMES = {"SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell", "GRU": "gru_cell"}


def rnn_weights(class_name: str, cfg: dict, in_dim: int | None, prefix: str = "") -> list[WeightSpec]:
    """Weights of one recurrent layer, in Keras order (kernel, recurrent_kernel, bias)."""
    units = cfg["units"]
    gates = RNN_GATES[class_name]
    cudnn = class_name.startswith("CuDNN")
    sub = "" if cudnn else "cell"
    pre = prefix if cudnn else "/".join(p for p in (prefix, CELL_NAMES[class_name]) if p)
    w = [
        WeightSpec("kernel", (in_dim, units * gates), k3=(sub, 0), prefix=pre),
        WeightSpec("recurrent_kernel", (units, units * gates), k3=(sub, 1), prefix=pre),
    ]
    if cudnn:
        w.append(WeightSpec("bias", (units * gates * 2,), k3=(sub, 2), prefix=pre))
    elif cfg.get("use_bias", True):
        bias = (2, units * gates) if class_name == "GRU" and cfg.get("reset_after", False) else (units * gates,)
        w.append(WeightSpec("bias", bias, k3=(sub, 2), prefix=pre))
    return w


def _rnn_outputs(cfg: dict, s: Shape | None, n_states: int) -> list:
    units = cfg["units"]
    batch = s[0] if s is not None else None
    steps = s[1] if s is not None else None
    first = (batch, steps, units) if cfg.get("return_sequences") else (batch, units)
    outs = [first]
    if cfg.get("return_state"):
        outs += [(batch, units)] * n_states
    return outs


def _rnn(class_name: str):
    n_states = 2 if "LSTM" in class_name else 1

    def fn(cfg, shapes):
        s = first(shapes)
        in_dim = s[-1] if s is not None else None
        return LayerInfo(_rnn_outputs(cfg, s, n_states), rnn_weights(class_name, cfg, in_dim))

    return fn


for _name in RNN_GATES:
    family.declare(_name, onnx="recurrent:recurrent", tflite="recurrent:recurrent")(_rnn(_name))


def inner_layer(cfg: dict, key: str = "layer") -> tuple[str, dict]:
    inner = cfg[key]
    return inner["class_name"], inner.get("config", {})


@family.declare("Bidirectional", onnx="recurrent:bidirectional", tflite="recurrent:bidirectional")
def _bidirectional(cfg, shapes):
    s = first(shapes)
    cls, inner = inner_layer(cfg)
    bcls, binner = inner_layer(cfg, "backward_layer") if cfg.get("backward_layer") else (cls, inner)
    fwd = infer(cls, inner, [s])
    bwd = infer(bcls, binner, [s])
    if fwd is None or bwd is None:
        return LayerInfo([None])
    fname = inner.get("name", "")
    bname = binner.get("name", "") if cfg.get("backward_layer") else ""
    fname = fname if fname.startswith("forward_") else f"forward_{fname}"
    bname = bname or f"backward_{inner.get('name', '')}"
    weights = []
    for w in fwd.weights:
        weights.append(nest(w, "forward_layer", fname))
    for w in bwd.weights:
        weights.append(nest(w, "backward_layer", bname))
    out = fwd.output_shapes[0]
    mode = cfg.get("merge_mode", "concat")
    if mode == "concat" and out is not None:
        out = (*out[:-1], None if out[-1] is None else out[-1] * 2)
    outs = [out] if mode is not None else [fwd.output_shapes[0], bwd.output_shapes[0]]
    if inner.get("return_state"):
        outs += fwd.output_shapes[1:] + bwd.output_shapes[1:]
    return LayerInfo(outs, weights)


def nest(w: WeightSpec, k3_sub: str, name: str) -> WeightSpec:
    sub = "/".join(p for p in (k3_sub, w.k3[0]) if p)
    pre = "/".join(p for p in (name, w.prefix) if p)
    return WeightSpec(w.role, w.shape, w.trainable, (sub, w.k3[1]), pre)
