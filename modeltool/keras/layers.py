"""Output shapes and weights of Keras layers, computed from their (normalized) configs.

A config file carries no weights and often no shapes, yet users want `model.summary()`'s figures
without building the model in TensorFlow. Each function here mirrors one Keras layer's
`compute_output_shape` and `build`: given the config and the input shapes it returns the output
shapes and the weights the layer creates (role, shape, trainable). An unknown class returns None
and shows as unknown: never a guess. Figures are checked against Keras's own `count_params()` and
output shapes by the fixture tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Shape = tuple


@dataclass
class WeightSpec:
    """A weight a layer creates. `k3` is where Keras 3 stores it: (sub-object path, var index)."""

    role: str
    shape: tuple
    trainable: bool = True
    k3: tuple[str, int] = ("", 0)
    prefix: str = ""  # Keras path between layer and role ("forward_lstm/lstm_cell")

    @property
    def size(self) -> int | None:
        if any(d is None for d in self.shape):
            return None
        return int(math.prod(self.shape))


@dataclass
class LayerInfo:
    output_shapes: list[Shape | None]
    weights: list[WeightSpec] = field(default_factory=list)


Infer = Callable[[dict[str, Any], list], LayerInfo]
REGISTRY: dict[str, Infer] = {}


def register(*names: str) -> Callable[[Infer], Infer]:
    def deco(fn: Infer) -> Infer:
        for n in names:
            REGISTRY[n] = fn
        return fn

    return deco


def infer(class_name: str, config: dict[str, Any], input_shapes: list[Shape | None]) -> LayerInfo | None:
    """Output shapes and weights of one layer call; None for a class this module does not know."""
    fn = REGISTRY.get(class_name)
    if fn is None:
        return None
    try:
        return fn(config, input_shapes)
    except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError):
        # A known class whose config or inputs we cannot follow: report unknown shapes, not a crash.
        return LayerInfo([None])


# ---------------------------------------------------------------- helpers


def _first(shapes: list) -> Shape | None:
    return shapes[0] if shapes else None


def _tuple(value: Any, n: int) -> tuple:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    if len(value) == 1 and n > 1:
        return value * n
    return value


def _channels_first(cfg: dict) -> bool:
    return cfg.get("data_format") == "channels_first"


def _conv_len(length: int | None, k: int, s: int, padding: str, d: int = 1) -> int | None:
    if length is None:
        return None
    eff = (k - 1) * d + 1
    if padding in ("same", "causal"):
        return (length + s - 1) // s
    if padding == "full":
        return (length + eff - 1 + s - 1) // s
    return max((length - eff) // s + 1, 0)


def _deconv_len(length, k, s, padding, out_pad, d=1):
    if length is None:
        return None
    k = k + (k - 1) * (d - 1)
    if out_pad is None:
        if padding == "valid":
            return length * s + max(k - s, 0)
        if padding == "full":
            return length * s - (s + k - 2)
        return length * s
    pad = {"same": k // 2, "valid": 0, "full": k - 1}[padding]
    return (length - 1) * s + k - 2 * pad + out_pad


def _spatial(shape: Shape, rank: int, cf: bool) -> tuple[list, Any]:
    """(spatial dims, channels) of an N-D input."""
    if cf:
        return list(shape[2 : 2 + rank]), shape[1]
    return list(shape[1 : 1 + rank]), shape[-1]


def _assemble(batch, spatial: list, channels, cf: bool) -> Shape:
    return (batch, channels, *spatial) if cf else (batch, *spatial, channels)


def _axis(axis: Any, rank: int) -> list[int]:
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return [a % rank for a in axes]


# ---------------------------------------------------------------- core


@register("InputLayer")
def _input(cfg, shapes):
    shape = cfg.get("batch_shape")
    return LayerInfo([tuple(shape) if shape is not None else _first(shapes)])


IDENTITY = (
    "Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianNoise GaussianDropout "
    "AlphaDropout ActivityRegularization Masking Activation ReLU LeakyReLU ELU ThresholdedReLU Softmax "
    "Identity Rescaling RandomFlip RandomRotation RandomZoom RandomContrast RandomBrightness "
    "RandomTranslation UnitNormalization Layer TFOpLambda"
).split()


@register(*IDENTITY)
def _identity(cfg, shapes):
    return LayerInfo([_first(shapes)])


@register("Dense")
def _dense(cfg, shapes):
    s = _first(shapes)
    units = cfg["units"]
    in_dim = s[-1] if s is not None else None
    w = [WeightSpec("kernel", (in_dim, units), k3=("", 0))]
    if cfg.get("use_bias", True):
        w.append(WeightSpec("bias", (units,), k3=("", 1)))
    return LayerInfo([None if s is None else (*s[:-1], units)], w)


@register("MultiHeadAttention")
def _multi_head_attention(cfg, shapes):
    """query/key/value projections and the output projection, each an EinsumDense sub-object
    (`query_dense`, ... in Keras 3 weight files; `mha/query/kernel` in legacy ones)."""
    q = _first(shapes)
    v = shapes[1] if len(shapes) > 1 else q
    k = shapes[2] if len(shapes) > 2 else v
    heads, key_dim = cfg["num_heads"], cfg["key_dim"]
    value_dim = cfg.get("value_dim") or key_dim
    out_dim = cfg.get("output_shape") or (q[-1] if q is not None else None)
    if isinstance(out_dim, (list, tuple)):
        out_dim = out_dim[-1] if len(out_dim) == 1 else None
    bias = cfg.get("use_bias", True)
    w = []
    for name, sub, src, dim in (("query", "query_dense", q, key_dim), ("key", "key_dense", k, key_dim),
                                ("value", "value_dense", v, value_dim)):  # fmt: skip
        w.append(WeightSpec("kernel", (src[-1] if src is not None else None, heads, dim), k3=(sub, 0), prefix=name))
        if bias:
            w.append(WeightSpec("bias", (heads, dim), k3=(sub, 1), prefix=name))
    w.append(WeightSpec("kernel", (heads, value_dim, out_dim), k3=("output_dense", 0), prefix="attention_output"))
    if bias:
        w.append(WeightSpec("bias", (out_dim,), k3=("output_dense", 1), prefix="attention_output"))
    return LayerInfo([None if q is None else (*q[:-1], out_dim)], w)


@register("Embedding")
def _embedding(cfg, shapes):
    s = _first(shapes)
    if s is None and cfg.get("input_length") is not None:
        s = (None, cfg["input_length"])
    out = None if s is None else (*s, cfg["output_dim"])
    return LayerInfo([out], [WeightSpec("embeddings", (cfg["input_dim"], cfg["output_dim"]))])


@register("PReLU")
def _prelu(cfg, shapes):
    s = _first(shapes)
    alpha = list(s[1:])
    for ax in cfg.get("shared_axes") or []:
        alpha[ax - 1] = 1
    return LayerInfo([s], [WeightSpec("alpha", tuple(alpha))])


def _norm_dims(cfg, s, default=-1) -> tuple:
    axes = _axis(cfg.get("axis", default), len(s))
    return tuple(s[a] for a in axes)


def _affine(cfg: dict, dims: tuple) -> list[WeightSpec]:
    """gamma (if `scale`) and beta (if `center`), the affine part of the normalization layers."""
    w: list[WeightSpec] = []
    for role, flag in (("gamma", "scale"), ("beta", "center")):
        if cfg.get(flag, True):
            w.append(WeightSpec(role, dims, k3=("", len(w))))
    return w


@register("BatchNormalization")
def _batchnorm(cfg, shapes):
    s = _first(shapes)
    dims = _norm_dims(cfg, s)
    dims = (int(math.prod(dims)),) if len(dims) > 1 and None not in dims else dims
    w = _affine(cfg, dims)
    i = len(w)
    w += [WeightSpec("moving_mean", dims, False, ("", i)), WeightSpec("moving_variance", dims, False, ("", i + 1))]
    return LayerInfo([s], w)


@register("LayerNormalization")
def _layernorm(cfg, shapes):
    s = _first(shapes)
    dims = _norm_dims(cfg, s)
    if cfg.get("rms_scaling"):
        return LayerInfo([s], [WeightSpec("gamma", dims)])
    return LayerInfo([s], _affine(cfg, dims))


@register("GroupNormalization")
def _groupnorm(cfg, shapes):
    s = _first(shapes)
    return LayerInfo([s], _affine(cfg, (s[cfg.get("axis", -1)],)))


@register("Normalization")
def _normalization(cfg, shapes):
    s = _first(shapes)
    if cfg.get("mean") is not None and cfg.get("variance") is not None:
        return LayerInfo([s])
    dims = _norm_dims(cfg, s)
    return LayerInfo(
        [s],
        [
            WeightSpec("mean", dims, False, ("", 0)),
            WeightSpec("variance", dims, False, ("", 1)),
            WeightSpec("count", (), False, ("", 2)),
        ],
    )


# ---------------------------------------------------------------- convolutions


def _conv(rank: int, transpose: bool = False):
    def fn(cfg, shapes):
        s = _first(shapes)
        cf = _channels_first(cfg)
        k = _tuple(cfg["kernel_size"], rank)
        st = _tuple(cfg.get("strides", 1), rank)
        dil = _tuple(cfg.get("dilation_rate", 1), rank)
        pad = cfg.get("padding", "valid")
        filters = cfg["filters"]
        groups = cfg.get("groups", 1) or 1
        spatial, ch = _spatial(s, rank, cf)
        if transpose:
            op = cfg.get("output_padding")
            op = _tuple(op, rank) if op is not None else (None,) * rank
            out = [_deconv_len(spatial[i], k[i], st[i], pad, op[i], dil[i]) for i in range(rank)]
            kshape = (*k, filters, ch)
        else:
            out = [_conv_len(spatial[i], k[i], st[i], pad, dil[i]) for i in range(rank)]
            kshape = (*k, None if ch is None else ch // groups, filters)
        w = [WeightSpec("kernel", kshape, k3=("", 0))]
        if cfg.get("use_bias", True):
            w.append(WeightSpec("bias", (filters,), k3=("", 1)))
        return LayerInfo([_assemble(s[0], out, filters, cf)], w)

    return fn


for _r in (1, 2, 3):
    register(f"Conv{_r}D")(_conv(_r))
    register(f"Conv{_r}DTranspose")(_conv(_r, transpose=True))
register("Convolution1D")(_conv(1))
register("Convolution2D")(_conv(2))


def _window(cfg: dict, shapes: list, rank: int) -> tuple:
    """(input shape, channels_first, kernel size, output spatial dims, input channels) of a
    strided, dilated window over `rank` spatial dims: what depthwise and separable convs share."""
    s = _first(shapes)
    cf = _channels_first(cfg)
    k = _tuple(cfg["kernel_size"], rank)
    st = _tuple(cfg.get("strides", 1), rank)
    dil = _tuple(cfg.get("dilation_rate", 1), rank)
    spatial, ch = _spatial(s, rank, cf)
    out = [_conv_len(spatial[i], k[i], st[i], cfg.get("padding", "valid"), dil[i]) for i in range(rank)]
    return s, cf, k, out, ch


def _depthwise(rank: int):
    def fn(cfg, shapes):
        s, cf, k, out, ch = _window(cfg, shapes, rank)
        dm = cfg.get("depth_multiplier", 1)
        out_ch = None if ch is None else ch * dm
        w = [WeightSpec("kernel", (*k, ch, dm), k3=("", 0))]  # Keras 2 called it depthwise_kernel
        if cfg.get("use_bias", True):
            w.append(WeightSpec("bias", (out_ch,), k3=("", 1)))
        return LayerInfo([_assemble(s[0], out, out_ch, cf)], w)

    return fn


def _separable(rank: int):
    def fn(cfg, shapes):
        s, cf, k, out, ch = _window(cfg, shapes, rank)
        dm = cfg.get("depth_multiplier", 1)
        filters = cfg["filters"]
        mid = None if ch is None else ch * dm
        w = [
            WeightSpec("depthwise_kernel", (*k, ch, dm), k3=("", 0)),
            WeightSpec("pointwise_kernel", (*(1,) * rank, mid, filters), k3=("", 1)),
        ]
        if cfg.get("use_bias", True):
            w.append(WeightSpec("bias", (filters,), k3=("", 2)))
        return LayerInfo([_assemble(s[0], out, filters, cf)], w)

    return fn


for _r in (1, 2):
    register(f"DepthwiseConv{_r}D")(_depthwise(_r))
    register(f"SeparableConv{_r}D", f"SeparableConvolution{_r}D")(_separable(_r))


# ---------------------------------------------------------------- pooling and resampling


def _pool(rank: int):
    def fn(cfg, shapes):
        s = _first(shapes)
        cf = _channels_first(cfg)
        pool = _tuple(cfg.get("pool_size", 2), rank)
        st = cfg.get("strides")
        st = pool if st is None else _tuple(st, rank)
        pad = cfg.get("padding", "valid")
        spatial, ch = _spatial(s, rank, cf)
        out = [_conv_len(spatial[i], pool[i], st[i], pad) for i in range(rank)]
        return LayerInfo([_assemble(s[0], out, ch, cf)])

    return fn


def _global_pool(rank: int):
    def fn(cfg, shapes):
        s = _first(shapes)
        cf = _channels_first(cfg)
        spatial, ch = _spatial(s, rank, cf)
        if cfg.get("keepdims"):
            return LayerInfo([_assemble(s[0], [1] * rank, ch, cf)])
        return LayerInfo([(s[0], ch)])

    return fn


for _r in (1, 2, 3):
    for _kind in ("Max", "Average"):
        register(f"{_kind}Pooling{_r}D", f"{_kind}Pool{_r}D")(_pool(_r))
        register(f"Global{_kind}Pooling{_r}D", f"Global{_kind}Pool{_r}D")(_global_pool(_r))


def _pad_pairs(value: Any, rank: int) -> list[tuple[int, int]]:
    if isinstance(value, int):
        return [(value, value)] * rank
    value = list(value)
    if rank == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [(value[0], value[1])]
    pairs = []
    for v in value:
        pairs.append((v, v) if isinstance(v, int) else (v[0], v[1]))
    return pairs


def _padding_layer(rank: int, sign: int, key: str):
    def fn(cfg, shapes):
        s = _first(shapes)
        cf = _channels_first(cfg) if rank > 1 else False
        pairs = _pad_pairs(cfg.get(key, 1), rank)
        spatial, ch = _spatial(s, rank, cf)
        out = [None if d is None else d + sign * (a + b) for d, (a, b) in zip(spatial, pairs)]
        return LayerInfo([_assemble(s[0], out, ch, cf)])

    return fn


def _upsampling(rank: int):
    def fn(cfg, shapes):
        s = _first(shapes)
        cf = _channels_first(cfg) if rank > 1 else False
        size = _tuple(cfg.get("size", 2), rank)
        spatial, ch = _spatial(s, rank, cf)
        out = [None if d is None else d * f for d, f in zip(spatial, size)]
        return LayerInfo([_assemble(s[0], out, ch, cf)])

    return fn


for _r in (1, 2, 3):
    register(f"ZeroPadding{_r}D")(_padding_layer(_r, 1, "padding"))
    register(f"Cropping{_r}D")(_padding_layer(_r, -1, "cropping"))
    register(f"UpSampling{_r}D")(_upsampling(_r))


@register("Resizing", "CenterCrop")
def _resizing(cfg, shapes):
    s = _first(shapes)
    cf = _channels_first(cfg)
    spatial, ch = _spatial(s, 2, cf)
    return LayerInfo([_assemble(s[0], [cfg["height"], cfg["width"]], ch, cf)])


# ---------------------------------------------------------------- reshaping


@register("Flatten")
def _flatten(cfg, shapes):
    s = _first(shapes)
    rest = s[1:]
    n = None if any(d is None for d in rest) else int(math.prod(rest))
    return LayerInfo([(s[0], n)])


@register("Reshape")
def _reshape(cfg, shapes):
    s = _first(shapes)
    target = list(cfg["target_shape"])
    if -1 in target:
        known = [d for d in s[1:]]
        if any(d is None for d in known):
            target = [None if t == -1 else t for t in target]
        else:
            rest = math.prod(t for t in target if t != -1)
            target = [math.prod(known) // rest if t == -1 else t for t in target]
    return LayerInfo([(s[0], *target)])


@register("Permute")
def _permute(cfg, shapes):
    s = _first(shapes)
    return LayerInfo([(s[0], *(s[d] for d in cfg["dims"]))])


@register("RepeatVector")
def _repeat(cfg, shapes):
    s = _first(shapes)
    return LayerInfo([(s[0], cfg["n"], s[1])])


# ---------------------------------------------------------------- merging


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


@register("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def _merge(cfg, shapes):
    return LayerInfo([_broadcast(shapes)])


@register("Concatenate")
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


@register("Dot")
def _dot(cfg, shapes):
    a, b = shapes[0], shapes[1]
    axes = cfg.get("axes", -1)
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    axes = [axes[0] % len(a), axes[1] % len(b)]
    out = [d for i, d in enumerate(a) if i != axes[0]] + [d for i, d in enumerate(b) if i not in (0, axes[1])]
    if len(out) == 1:
        out.append(1)
    return LayerInfo([tuple(out)])


# ---------------------------------------------------------------- recurrent


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
        s = _first(shapes)
        in_dim = s[-1] if s is not None else None
        return LayerInfo(_rnn_outputs(cfg, s, n_states), rnn_weights(class_name, cfg, in_dim))

    return fn


for _name in RNN_GATES:
    register(_name)(_rnn(_name))


def _inner(cfg: dict, key: str = "layer") -> tuple[str, dict]:
    inner = cfg[key]
    return inner["class_name"], inner.get("config", {})


@register("Bidirectional")
def _bidirectional(cfg, shapes):
    s = _first(shapes)
    cls, inner = _inner(cfg)
    bcls, binner = _inner(cfg, "backward_layer") if cfg.get("backward_layer") else (cls, inner)
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
        weights.append(_nest(w, "forward_layer", fname))
    for w in bwd.weights:
        weights.append(_nest(w, "backward_layer", bname))
    out = fwd.output_shapes[0]
    mode = cfg.get("merge_mode", "concat")
    if mode == "concat" and out is not None:
        out = (*out[:-1], None if out[-1] is None else out[-1] * 2)
    outs = [out] if mode is not None else [fwd.output_shapes[0], bwd.output_shapes[0]]
    if inner.get("return_state"):
        outs += fwd.output_shapes[1:] + bwd.output_shapes[1:]
    return LayerInfo(outs, weights)


def _nest(w: WeightSpec, k3_sub: str, name: str) -> WeightSpec:
    sub = "/".join(p for p in (k3_sub, w.k3[0]) if p)
    pre = "/".join(p for p in (name, w.prefix) if p)
    return WeightSpec(w.role, w.shape, w.trainable, (sub, w.k3[1]), pre)


@register("TimeDistributed")
def _time_distributed(cfg, shapes):
    s = _first(shapes)
    cls, inner = _inner(cfg)
    inner_in = None if s is None else (s[0], *s[2:])
    info = infer(cls, inner, [inner_in])
    if info is None:
        return LayerInfo([None])
    outs = [None if o is None or s is None else (s[0], s[1], *o[1:]) for o in info.output_shapes]
    return LayerInfo(outs, [_nest(w, "layer", inner.get("name", "")) for w in info.weights])
