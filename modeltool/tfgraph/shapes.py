"""Static shape inference over a TF GraphDef, without TensorFlow.

A frozen graph records the shapes of its Placeholders and Consts only; the rest is what TensorFlow's shape
functions compute at import. This module applies the same rules, in topological order, to the ops models
are made of, so `inspect` shows the shapes TensorFlow would, never a guess: what TensorFlow cannot know (a
dynamic batch) stays None, as do the outputs of ops not covered here. Like TensorFlow it folds small constant
tensors and reads shape tensors as partial shapes (through Shape/Pack/ConcatV2/StridedSlice/Cast), so
`Reshape(x, Pack(Shape(x)[0], 28, 28))` gives (None, 28, 28).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

from modeltool.tfgraph import protos

Shape = tuple | None  # tuple[int | None, ...]; None = unknown rank
Ref = tuple[str, int]  # (node name, output index)
#: tensors with more elements are never evaluated (they do not describe shapes)
MAX_VALUE_ELEMENTS = 1 << 16
_INT_TYPES = (3, 9)  # DT_INT32, DT_INT64: the types of shape tensors
_MASKS = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
#: what a malformed or inconsistent graph raises here: the node's outputs are then unknown
_INFER_ERRORS = (ValueError, TypeError, IndexError, KeyError, ArithmeticError, RecursionError)


def _attr(attrs: dict[str, Any], key: str, default: Any = 0) -> Any:
    """An attribute as the default's Python type (bool, int, float, str, list of ints)."""
    value = attrs.get(key)
    if value is None or isinstance(default, list):
        return default if value is None else [int(v) for v in value.list.i]
    field = {bool: "b", int: "i", float: "f", str: "s"}[type(default)]
    got = getattr(value, field)
    return got.decode("utf-8", "replace") if field == "s" else type(default)(got)


def _int_type(attrs: dict[str, Any]) -> type:
    """The numpy type of Shape's (and Size's) `out_type`: int32 unless int64."""
    return np.int64 if attrs.get("out_type") is not None and attrs["out_type"].type == 9 else np.int32


def _attr_shape(attrs: dict[str, Any], key: str) -> Shape:
    value = attrs.get(key)
    return protos.shape_of(value.shape) if value is not None and value.HasField("shape") else None


# --- dimension arithmetic with TensorFlow's InferenceContext rules (None = unknown) ---------------
def _add(a: int | None, b: int | None) -> int | None:
    if a == 0 or b == 0:
        return b if a == 0 else a
    return None if a is None or b is None else a + b


def _sub(a: int | None, b: int | None) -> int | None:
    if b == 0 or a is None or b is None:
        return a if b == 0 else None
    if a < b:
        raise ValueError(f"negative dimension {a} - {b}")
    return a - b


def _mul(a: int | None, b: int | None) -> int | None:
    if a == 0 or b == 0:
        return 0
    if a == 1 or b == 1:
        return b if a == 1 else a
    return None if a is None or b is None else a * b


def _div(a: int | None, b: int | None, exact: bool = False) -> int | None:
    if b == 1 or a is None or b is None:
        return a if b == 1 else None
    if b <= 0 or exact and a % b:
        raise ValueError(f"{a} is not divisible by {b}")
    return a // b


def _merge_dim(a: int | None, b: int | None) -> int | None:
    if a is not None and b is not None and a != b:
        raise ValueError(f"dimensions {a} and {b} differ")
    return a if a is not None else b


def _merge(a: Shape, b: Shape) -> Shape:
    """The shape compatible with both (TensorFlow's Merge): known dims win, conflicts raise."""
    if a is None or b is None:
        return b if a is None else a
    if len(a) != len(b):
        raise ValueError(f"ranks {len(a)} and {len(b)} differ")
    return tuple(_merge_dim(x, y) for x, y in zip(a, b))


def _with_rank(s: Shape, rank: int) -> tuple:
    """`s` as a shape of that rank (unknown dims when `s` is unknown); raises on another rank."""
    if s is None:
        return (None,) * rank
    if len(s) != rank:
        raise ValueError(f"rank {len(s)}, expected {rank}")
    return s


def _concat(*parts: Shape) -> Shape:
    return None if any(p is None for p in parts) else tuple(d for p in parts for d in p)  # type: ignore[union-attr]


def _unknown_like(s: Shape) -> Shape:
    return None if s is None else (None,) * len(s)


def _rank(s: Shape) -> int | None:
    return None if s is None else len(s)


def _broadcast(x: Shape, y: Shape) -> Shape:
    """NumPy-style broadcasting, with TensorFlow's rules for unknown dims (1 or 0 against unknown is unknown)."""
    if x is None or y is None:
        return None
    rank = max(len(x), len(y))
    out: list[int | None] = []
    for a, b in zip((1,) * (rank - len(x)) + x, (1,) * (rank - len(y)) + y):
        big = [d for d in (a, b) if d is not None and d > 1]
        if len(set(big)) > 1:
            raise ValueError(f"cannot broadcast {a} and {b}")
        out.append(big[0] if big else b if a == 1 else a if b == 1 else 0 if a == b == 0 else None)
    return tuple(out)


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _dims_of(value: np.ndarray) -> tuple:
    """A 1-D shape tensor's value as a shape (-1 = unknown dim)."""
    if value.ndim != 1 or value.dtype.kind not in "iu" or (value < -1).any():
        raise ValueError(f"not a shape: {value.tolist()}")
    return tuple(None if v == -1 else v for v in value.tolist())


def _numpy_dtype(enum: int) -> np.dtype:
    name = protos.dtype_name(enum)
    if name not in ("float16", "float32", "float64", "bool") and name[:3] not in ("int", "uin"):
        raise TypeError(f"{name} is not folded")
    return np.dtype(name)


# --- the engine ----------------------------------------------------------------------------------------
def _ref(text: str) -> Ref:
    name, _, index = text.partition(":")
    return name, int(index) if index.isdigit() else 0


class _Engine:
    """Shapes, constant values and partial shape values of the graph's tensors."""

    def __init__(self, graph_def: Any) -> None:
        self.nodes = {n.name: n for n in graph_def.node}
        self.op = {n.name: n.op for n in graph_def.node}.get  # a node's op type; None when absent
        self.inputs = {n.name: [_ref(i) for i in n.input if not i.startswith("^")] for n in graph_def.node}
        self.attrs = {n.name: protos.attrs_of(n) for n in graph_def.node}
        self.shapes: dict[str, list[Shape]] = {}
        self._values: dict[Ref, np.ndarray | None] = {}
        self._partial: dict[Ref, Shape] = {}

    def shape(self, ref: Ref) -> Shape:
        outs = self.shapes.get(ref[0])
        return outs[ref[1]] if outs is not None and ref[1] < len(outs) else None

    def _memo(self, cache: dict[Ref, Any], ref: Ref, compute: Callable[[Ref], Any]) -> Any:
        if ref not in cache:
            cache[ref] = None  # a cycle reads as unknown
            try:
                with np.errstate(all="raise"):  # what TensorFlow would not fold (x / 0) stays unknown, silently
                    cache[ref] = compute(ref)
            except _INFER_ERRORS:
                pass
        return cache[ref]

    def value(self, ref: Ref) -> np.ndarray | None:
        """The tensor's value where TensorFlow folds it at import: constants, shapes of fully known
        tensors, and stateless ops of those; None otherwise."""
        return self._memo(self._values, ref, self._evaluate)

    def scalar(self, ref: Ref) -> int | None:
        value = self.value(ref)
        return int(value.reshape(-1)[0]) if value is not None and value.size == 1 and value.dtype.kind in "iu" else None

    def _evaluate(self, ref: Ref) -> np.ndarray | None:
        op = self.op(ref[0])
        if op == "Const":
            tensor = self.attrs[ref[0]]["value"].tensor
            shape, dtype = protos.shape_of(tensor.tensor_shape), _numpy_dtype(tensor.dtype)  # raises for strings
            if shape is None or math.prod(shape) > MAX_VALUE_ELEMENTS:
                return None
            return protos.tensor_value(tensor, shape).astype(dtype, copy=False)
        known = _value_from_shapes(self, ref)
        shape = self.shape(ref)
        if known is not None or op not in _FOLD or shape is None or None in shape:
            return known
        if math.prod(shape) > MAX_VALUE_ELEMENTS:
            return None
        values = [self.value(r) for r in self.inputs[ref[0]]]
        if any(v is None for v in values):
            return None
        out = _FOLD[op](_Ctx(self, ref[0]), values)  # type: ignore[arg-type]
        return np.asarray(out[ref[1]]) if ref[1] < len(out) else None

    def as_shape(self, ref: Ref) -> Shape:
        """The shape a 1-D int tensor describes, as far as it is known (TensorFlow's ConstantPartialShape)."""
        return self._memo(self._partial, ref, self._partial_shape)

    def _partial_shape(self, ref: Ref) -> Shape:
        own = self.shape(ref)
        if own == ():  # a scalar stands for "unknown shape" (-1), or is an error
            return None
        length = _with_rank(own, 1)[0]
        if length == 0:
            return ()
        op, ins = self.op(ref[0]), self.inputs.get(ref[0], [])
        if op == "Cast":
            value = self.value(ref)
            if value is not None:
                return _dims_of(value)
            before = self.as_shape(ins[0])
            dst = self.attrs[ref[0]].get("DstT")
            return before if dst is not None and dst.type in _INT_TYPES else _unknown_like(before)
        if op in ("Shape", "ShapeN"):
            return self.shape(ins[ref[1] if op == "ShapeN" else 0])
        if op == "Pack":
            return tuple(d if (d := self.scalar(r)) is not None and d >= 0 else None for r in ins)
        if op in ("Concat", "ConcatV2"):
            return _concat(*(self.as_shape(r) for r in (ins[1:] if op == "Concat" else ins[:-1])))
        if op == "StridedSlice":
            return self._partial_strided_slice(ref[0], ins)
        value = self.value(ref)
        if value is not None:
            return _dims_of(value)
        return None if length is None else (None,) * length

    def _partial_strided_slice(self, name: str, ins: list[Ref]) -> Shape:
        """`shape[a:b:s]` with scalar bounds (the only slices TensorFlow reads as partial shapes)."""
        bm, em, *others = (_attr(self.attrs[name], k) for k in _MASKS)
        if any(self.shape(r) != (1,) for r in ins[1:4]) or bm > 1 or em > 1 or any(others):
            return None
        begin = 0 if bm else self.scalar(ins[1])
        end = None if em else self.scalar(ins[2])
        stride, source = self.scalar(ins[3]), self.as_shape(ins[0])
        if begin is None or (end is None and not em) or stride is None or stride < 0 or source is None:
            return None
        return tuple(source[begin:end:stride])

    def run(self, seeds: dict[str, Shape]) -> dict[str, list[Shape]]:
        by_node: dict[str, dict[int, Shape]] = {}
        for key, shape in seeds.items():
            name, index = _ref(key)
            by_node.setdefault(name, {})[index] = _clean(shape)
        for name in _topological(self):
            node, attrs = self.nodes[name], self.attrs[name]
            fn = _SHAPE_FNS.get(node.op)
            try:
                outs = [_clean(s) for s in fn(_Ctx(self, name))] if fn is not None else [None]
            except _INFER_ERRORS:
                outs = [None]
            recorded = attrs["_output_shapes"].list.shape if "_output_shapes" in attrs else []
            for k, proto in enumerate(recorded):  # TensorFlow's own shapes, where the exporter kept them
                outs += [None] * (k + 1 - len(outs))
                outs[k] = outs[k] if outs[k] is not None else protos.shape_of(proto)
            for k, shape in by_node.get(name, {}).items():
                outs += [None] * (k + 1 - len(outs))
                outs[k] = shape
            self.shapes[name] = outs
        return self.shapes


def _clean(shape: Any) -> Shape:
    if shape is None or any(d is not None and d < 0 for d in shape):
        return None
    return tuple(None if d is None else int(d) for d in shape)


def _topological(eng: _Engine) -> list[str]:
    """Producers first; nodes on a cycle (while loops) follow in file order, their unvisited inputs unknown."""
    pending, consumers = {}, {}
    for name, refs in eng.inputs.items():
        producers = [r[0] for r in refs if r[0] in eng.nodes]
        pending[name] = len(producers)
        for p in producers:
            consumers.setdefault(p, []).append(name)
    ready = deque(name for name in eng.nodes if pending[name] == 0)
    order = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for c in consumers.get(name, ()):
            pending[c] -= 1
            if pending[c] == 0:
                ready.append(c)
    seen = set(order)
    return order + [name for name in eng.nodes if name not in seen]


class _Ctx:
    """One node's view: its inputs' shapes and values, its attributes."""

    __slots__ = ("eng", "name", "op", "a", "refs", "n")

    def __init__(self, eng: _Engine, name: str) -> None:
        self.eng, self.name, self.op, self.a = eng, name, eng.op(name), eng.attrs[name]
        self.refs = eng.inputs[name]
        self.n = len(self.refs)

    def attr(self, key: str, default: Any = 0) -> Any:
        return _attr(self.a, key, default)

    def shape(self, i: int) -> Shape:
        return self.eng.shape(self.refs[i]) if i < self.n else None

    def ints(self, i: int) -> list[int] | None:
        value = self.eng.value(self.refs[i]) if i < self.n else None
        return None if value is None or value.dtype.kind not in "iu" else [int(v) for v in value.reshape(-1)]

    def scalar(self, i: int) -> int | None:
        return self.eng.scalar(self.refs[i]) if i < self.n else None

    def as_shape(self, i: int) -> Shape:
        return self.eng.as_shape(self.refs[i]) if i < self.n else None


def _value_from_shapes(eng: _Engine, ref: Ref) -> np.ndarray | None:
    """What TensorFlow reads off known shapes: Shape, Rank, Size, `shape(x)[i]`, `unstack(shape(x))[i]`."""
    op, ins, attrs = eng.op(ref[0]), eng.inputs.get(ref[0], []), eng.attrs[ref[0]]
    if op in ("Shape", "ShapeN", "Rank", "Size") and ins:
        s = eng.shape(ins[ref[1] if op == "ShapeN" else 0])
        if op == "Rank" or s is None or None in s:
            return np.array(len(s), np.int32) if op == "Rank" and s is not None else None
        return np.array(s if op != "Size" else math.prod(s), _int_type(attrs))
    if not ins or eng.op(ins[0][0]) != "Shape" or not eng.inputs[ins[0][0]]:
        return None
    masks = [_attr(attrs, k) for k in _MASKS]
    index = op == "StridedSlice" and masks == [0, 0, 0, 0, 1] and eng.op(ins[1][0]) == "Const"
    ix = ref[1] if op == "Unpack" and _attr(attrs, "axis") == 0 else eng.scalar(ins[1]) if index else None
    shape = eng.shape(eng.inputs[ins[0][0]][0])
    if ix is None or shape is None or not -len(shape) <= ix < len(shape) or shape[ix] is None:
        return None
    return np.array(shape[ix], _int_type(eng.attrs[ins[0][0]]))


# --- shape functions -------------------------------------------------------------------------------------
def _matmul(c: _Ctx) -> list[Shape]:
    a, b = _with_rank(c.shape(0), 2), _with_rank(c.shape(1), 2)
    ta, tb = c.attr("transpose_a", False), c.attr("transpose_b", False)
    _merge_dim(a[0 if ta else 1], b[1 if tb else 0])
    return [(a[1 if ta else 0], b[0 if tb else 1])]


def _batch_matmul(c: _Ctx) -> list[Shape]:
    a, b = c.shape(0), c.shape(1)
    if a is not None and len(a) < 2 or b is not None and len(b) < 2:
        raise ValueError("BatchMatMul needs rank >= 2")
    rows = None if a is None else a[-1 if c.attr("adj_x", False) else -2]
    cols = None if b is None else b[-2 if c.attr("adj_y", False) else -1]
    batch_a, batch_b = (None if a is None else a[:-2]), (None if b is None else b[:-2])
    batch = _merge(batch_a, batch_b) if c.op == "BatchMatMul" else _broadcast(batch_a, batch_b)
    return [_concat(batch, (rows, cols))]


def _bias_add(c: _Ctx) -> list[Shape]:
    x, bias = c.shape(0), _with_rank(c.shape(1), 1)
    nchw = c.attr("data_format", "") == "NCHW"
    if x is None:
        return [None]
    if len(x) < (3 if nchw else 2):
        raise ValueError(f"BiasAdd on rank {len(x)}")
    k = 1 if nchw else len(x) - 1
    return [x[:k] + (_merge_dim(x[k], bias[0]),) + x[k + 1 :]]


def _layout(data_format: str, rank: int) -> tuple[list[int], int]:
    """(spatial indexes, channel index) of a data format; the batch is always first."""
    return (list(range(2, rank)), 1) if data_format.startswith("NC") else (list(range(1, rank - 1)), rank - 1)


def _window(size: int | None, k: int | None, dilation: int, stride: int, padding: str, pads: int) -> int | None:
    """Output length of a sliding window (TensorFlow's GetWindowedOutputSizeFromDimsV2)."""
    if stride <= 0 or dilation < 1 or padding not in ("SAME", "VALID", "EXPLICIT"):
        raise ValueError(f"window with stride {stride}, dilation {dilation}, padding {padding!r}")
    if padding == "SAME":
        return _div(_add(size, stride - 1), stride)
    window = _add(_mul(_sub(k, 1), dilation), 1) if dilation > 1 else k
    return _div(_add(_sub(_add(size, pads), window), stride), stride)


def _explicit(c: _Ctx, padding: str, axis: int) -> int:
    return sum(c.attr("explicit_paddings", [])[2 * axis : 2 * axis + 2]) if padding == "EXPLICIT" else 0


def _conv(c: _Ctx) -> list[Shape]:
    rank = 5 if c.op.startswith("Conv3D") else 4
    fmt = c.attr("data_format", "NDHWC" if rank == 5 else "NHWC")
    x, w = _with_rank(c.shape(0), rank), _with_rank(c.shape(1), rank)
    strides, dilations = c.attr("strides", []), c.attr("dilations", []) or [1] * rank
    padding = c.attr("padding", "")
    if len(strides) != rank or len(dilations) != rank or fmt.endswith("VECT_C"):
        raise ValueError("unsupported strides, dilations or data format")
    spatial, ch = _layout(fmt, rank)
    depth = _mul(_merge_dim(x[ch], w[2]), w[3]) if c.op.startswith("Depthwise") else w[rank - 1]
    pads = [_explicit(c, padding, a) for a in spatial]
    sizes = [_window(x[a], w[k], dilations[a], strides[a], padding, pads[k]) for k, a in enumerate(spatial)]
    return [(x[0], depth, *sizes) if ch == 1 else (x[0], *sizes, depth)]


def _conv_backprop_input(c: _Ctx) -> list[Shape]:
    """The gradient of a convolution (a transposed convolution): its size is an input."""
    fmt = c.attr("data_format", "NHWC")
    dy, w = _with_rank(c.shape(2), 4), _with_rank(c.shape(1), 4)
    spatial, ch = _layout(fmt, 4)
    given = c.as_shape(0) or _with_rank(c.as_shape(0), 4)
    if len(given) not in (2, 4):  # type: ignore[arg-type]
        raise ValueError("input_sizes must hold 4 or 2 values")
    sizes, depth = ([given[i] for i in spatial], given[ch]) if len(given) == 4 else (list(given), w[2])  # type: ignore
    return [(dy[0], depth, *sizes) if ch == 1 else (dy[0], *sizes, depth)]


def _pool(c: _Ctx) -> list[Shape]:
    rank = 5 if c.op.endswith("3D") else 4
    fmt = c.attr("data_format", "NDHWC" if rank == 5 else "NHWC")
    x = _with_rank(c.shape(0), rank)
    ksize, strides = c.attr("ksize", []), c.attr("strides", [])
    if len(ksize) != rank or len(strides) != rank or fmt.endswith("VECT_C"):
        raise ValueError("unsupported ksize, strides or data format")
    padding = c.attr("padding", "")
    spatial, ch = _layout(fmt, rank)
    dims: list[int | None] = list(x)
    for a in spatial:
        dims[a] = _window(x[a], ksize[a], 1, strides[a], padding, _explicit(c, padding, a))
    dims[ch] = _div(x[ch], ksize[ch], exact=True)  # pooling across channels divides them
    return [tuple(dims)] * (2 if c.op == "MaxPoolWithArgmax" else 1)


def _fused_batch_norm(c: _Ctx) -> list[Shape]:
    fmt = c.attr("data_format", "NHWC")
    rank = 5 if fmt in ("NDHWC", "NCDHW") else 4
    x = _with_rank(c.shape(0), rank)
    ch = 1 if fmt.startswith("NC") else rank - 1
    training = c.attr("is_training", True) and c.attr("exponential_avg_factor", 1.0) == 1.0
    channels = x[ch]
    for i in range(1, 3 if training else 5):  # scale, offset (and mean, variance at inference)
        channels = _merge_dim(channels, _with_rank(c.shape(i), 1)[0])
    return [x[:ch] + (channels,) + x[ch + 1 :]] + [(channels,)] * 4 + ([None] if c.op == "FusedBatchNormV3" else [])


def _reduce(c: _Ctx) -> list[Shape]:
    x, keep, axes = c.shape(0), c.attr("keep_dims", False), c.ints(1)
    if axes is None or x is None:
        return [_unknown_like(x) if keep else None]
    drop = {_axis(a, len(x)) for a in axes}
    return [tuple(1 if i in drop else d for i, d in enumerate(x) if keep or i not in drop)]


def _arg_reduce(c: _Ctx) -> list[Shape]:
    x, axis = c.shape(0), c.scalar(1)
    if x is None or len(x) <= 1:
        return [None if x is None else ()]
    if axis is None:
        return [(None,) * (len(x) - 1)]
    axis = _axis(axis, len(x))
    return [x[:axis] + x[axis + 1 :]]


def _reshape(c: _Ctx) -> list[Shape]:
    """TensorFlow's SetOutputShapeForReshape: the target's one -1 is solved when the input's size is
    known (a known 0 dim makes it 0 whatever the others are)."""
    x, out = c.shape(0), c.as_shape(1)
    if x is None or out is None or 0 in out or out.count(None) > 1 or None in x and 0 not in x:
        return [out]
    known_in, known_out = math.prod(d or 0 for d in x), math.prod(d for d in out if d is not None)
    if None not in out and known_in != known_out or known_in % known_out:
        raise ValueError(f"cannot reshape {x} to {out}")
    return [tuple(known_in // known_out if d is None else d for d in out)]


def _squeeze(c: _Ctx) -> list[Shape]:
    x = c.shape(0)
    if x is None:
        return [None]
    axes = {_axis(a, len(x)) for a in c.attr("squeeze_dims", [])}
    out = []
    for i, d in enumerate(x):
        if i in axes and d not in (None, 1):
            raise ValueError(f"cannot squeeze dimension {i} of size {d}")
        if d is None and not axes:
            return [None]  # squeezing all 1s of a tensor with an unknown dimension
        if i not in axes and (d != 1 or axes):
            out.append(d)
    return [tuple(out)]


def _expand_dims(c: _Ctx) -> list[Shape]:
    x, dim = c.shape(0), c.ints(1)
    if x is None or dim is None or len(dim) != 1:
        return [None]
    axis = _axis(dim[0], len(x) + 1)
    return [x[:axis] + (1,) + x[axis:]]


def _concat_op(c: _Ctx) -> list[Shape]:
    v1 = c.op == "Concat"
    parts = [c.shape(i) for i in (range(1, c.n) if v1 else range(c.n - 1))]
    axis = c.scalar(0 if v1 else c.n - 1)
    if axis is None:  # the rank of any input
        return [next((_unknown_like(p) for p in parts if p is not None), None)]
    known = [p for p in parts if p is not None]
    if any(len(p) < (-axis if axis < 0 else axis + 1) for p in known):
        raise ValueError("concat input rank too low")
    middle = reduce(_add, (p[axis] for p in known)) if len(known) == len(parts) else None
    before = reduce(_merge, (p[:axis] for p in known), None)
    after = reduce(_merge, (p[axis + 1 :] if axis != -1 else () for p in known), None)
    return [_concat(before, (middle,), after)]


def _pack(c: _Ctx) -> list[Shape]:
    cur = reduce(_merge, (c.shape(i) for i in range(c.n)), None)
    if cur is None:
        return [None]
    axis = _axis(c.attr("axis"), len(cur) + 1)
    return [cur[:axis] + (c.n,) + cur[axis:]]


def _unpack(c: _Ctx) -> list[Shape]:
    x, num = c.shape(0), c.attr("num")
    if x is None:
        return [None] * num
    axis = _axis(c.attr("axis"), len(x))
    _merge_dim(x[axis], num)
    return [x[:axis] + x[axis + 1 :]] * num


def _split(c: _Ctx) -> list[Shape]:
    v, num = c.op == "SplitV", c.attr("num_split")
    x, axis = c.shape(0 if v else 1), c.scalar(2 if v else 0)
    if x is None or axis is None:
        return [_unknown_like(x)] * num
    axis = _axis(axis, len(x))
    sizes = c.ints(1) if v else [_div(x[axis], num, exact=True)] * num
    if sizes is None:
        return [x[:axis] + (None,) + x[axis + 1 :]] * num
    if len(sizes) != num or sizes.count(-1) > 1:
        raise ValueError("size_splits does not match num_split")
    rest = None if x[axis] is None else x[axis] - sum(s for s in sizes if s is not None and s != -1)
    return [x[:axis] + (rest if s == -1 else s,) + x[axis + 1 :] for s in sizes]


def _transpose(c: _Ctx) -> list[Shape]:
    x, perm, perm_shape = c.shape(0), c.ints(1), c.shape(1) or (None,)
    rank = len(x) if x is not None else perm_shape[0] if perm_shape[0] is not None else _rank(perm)
    if rank is None or x is None and rank < 2:
        return [x]
    x = _with_rank(x, rank)
    if perm is not None and len(perm) != rank:
        raise ValueError("perm does not match the rank")
    return [(None,) * rank if perm is None else tuple(x[_axis(p, rank)] for p in perm)]


def _pad(c: _Ctx) -> list[Shape]:
    x, paddings, values = c.shape(0), _with_rank(c.shape(1), 2), c.eng.value(c.refs[1])
    rank = paddings[0] if paddings[0] is not None else None if x is None else len(x)
    if values is None:
        return [None if rank is None else (None,) * rank]
    if values.ndim != 2 or values.shape[1] != 2 or (values < 0).any():
        raise ValueError("paddings must be [rank, 2] and non-negative")
    return [tuple(_add(d, int(p[0]) + int(p[1])) for d, p in zip(_with_rank(x, values.shape[0]), values))]


def _slice(c: _Ctx) -> list[Shape]:
    x, begin, sizes, ndims = c.shape(0), c.ints(1), c.ints(2), _with_rank(c.shape(1), 1)[0]
    x = x if ndims is None else _with_rank(x, ndims)
    if sizes is None:
        partial = c.as_shape(2)
        return [partial if partial is not None else _unknown_like(x)]
    x = _with_rank(x, len(sizes))
    if begin is None:
        return [tuple(None if s == -1 else s for s in sizes)]
    return [tuple(_sub(d, b) if s == -1 else s for d, b, s in zip(x, begin, sizes))]


def _strided_slice(c: _Ctx) -> list[Shape]:
    x, strides = c.shape(0), c.ints(3)
    if x is None or strides is None:
        return [None]
    return [strided_slice_shape(x, c.ints(1), c.ints(2), strides, tuple(c.attr(k) for k in _MASKS))]


def strided_slice_shape(x: tuple, begin: list[int] | None, end: list[int] | None, strides: list[int],
                        masks: tuple) -> tuple:  # fmt: skip
    """StridedSlice's output shape (TensorFlow's ValidateStridedSliceOp): unknown dims or begin/end values give
    unknown sizes unless a mask or shrink fixes them; known ones clamp like Python slices, as TensorFlow's do."""
    begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_mask = masks
    n = len(strides)
    if len(begin if begin is not None else strides) != n or len(end if end is not None else strides) != n:
        raise ValueError("begin, end and strides differ in length")
    if ellipsis_mask & (ellipsis_mask - 1):
        raise ValueError("several ellipses")
    kinds = ["..." if ellipsis_mask >> i & 1 else "new" if new_axis_mask >> i & 1 else "dim" for i in range(n)]
    kinds += [] if "..." in kinds else ["..."]  # an implicit ellipsis at the end
    cover = len(x) - kinds.count("dim")  # input dims the ellipsis stands for
    if cover < 0:
        raise ValueError("too many indices for the input rank")
    out: list[int | None] = []
    d = 0
    for i, kind in enumerate(kinds):
        if kind != "dim":
            out += [1] if kind == "new" else x[d : d + cover]
            d += 0 if kind == "new" else cover
            continue
        dim, s, known = x[d], strides[i], begin is not None and end is not None
        d += 1
        if s == 0 or shrink_mask >> i & 1 and s < 0:
            raise ValueError(f"stride {s}")
        masked = (begin_mask >> i & 1, end_mask >> i & 1)
        if shrink_mask >> i & 1:
            if known and dim is not None and not -dim <= begin[i] < dim:  # type: ignore[index]
                raise ValueError(f"index {begin[i]} out of bounds for size {dim}")  # type: ignore[index]
        elif dim is None or not known and masked != (1, 1):
            out.append(None)
        else:
            bounds = slice(None if masked[0] else begin[i], None if masked[1] else end[i], s)  # type: ignore[index]
            out.append(len(range(*bounds.indices(dim))))
    return tuple(out)


def _range(c: _Ctx) -> list[Shape]:
    start, limit, delta = (None if (v := c.eng.value(r)) is None else v.item() for r in c.refs[:3])
    if start is None or limit is None or delta is None:
        return [(None,)]
    if all(isinstance(v, int) for v in (start, limit, delta)):
        return [(len(range(start, limit, delta)),)]
    return [(max(0, int(np.ceil((limit - start) / delta))),)]


def _tile(c: _Ctx) -> list[Shape]:
    x, multiples = c.shape(0), c.as_shape(1)
    multiples = multiples if x is None else _with_rank(multiples, len(x))
    if multiples is None:
        return [None]
    return [tuple(_mul(d, m) for d, m in zip(_with_rank(x, len(multiples)), multiples))]


def _gather(c: _Ctx) -> list[Shape]:
    params, indices = c.shape(0), c.shape(1)
    axis, batch_dims = c.scalar(2), c.attr("batch_dims")
    if params is None or indices is None:
        return [None]
    if axis is None:
        return [(None,) * (len(params) + len(indices) - 1 - batch_dims)]
    axis, batch_dims = _axis(axis, len(params)), batch_dims + len(indices) if batch_dims < 0 else batch_dims
    return [params[:axis] + indices[batch_dims:] + params[axis + 1 :]]


def _space_batch(c: _Ctx) -> list[Shape]:
    """SpaceToBatchND pads spatial dims and moves blocks of them into the batch (dilated convolutions);
    BatchToSpaceND moves them back and crops."""
    x, block, pads, m = c.shape(0), c.ints(1), c.ints(2), _with_rank(c.shape(1), 1)[0]
    if x is None or m is None or len(x) <= m:
        return [None]
    to_batch = c.op == "SpaceToBatchND"
    batch = None if block is None else reduce(_mul if to_batch else lambda n, b: _div(n, b, True), block, x[0])
    sizes: list[int | None] = [None] * m
    if block is not None and pads is not None:
        edges = zip(x[1:], block, pads[::2], pads[1::2])
        sizes = [_div(_add(d, p + q), b, True) if to_batch else _sub(_mul(d, b), p + q) for d, b, p, q in edges]
    return [(batch, *sizes, *x[1 + m :])]


def _resize(c: _Ctx) -> list[Shape]:
    x, size = _with_rank(c.shape(0), 4), c.ints(1)
    h, w = (size[0], size[1]) if size is not None and len(size) == 2 else (None, None)
    return [(x[0], h, w, x[3])]


def _select(c: _Ctx) -> list[Shape]:
    # cond is a scalar, a vector over the first dimension, or of the shape of then/else
    cond, data = c.shape(0), _merge(c.shape(1), c.shape(2))
    if cond is not None and data is not None and cond != () and (len(cond) != 1 or data == ()):
        return [_merge(data, cond)]
    return [data]


UNARY = (
    "Abs Acos Acosh Asin Asinh Atan Atanh Cast Ceil CheckNumerics CheckNumericsV2 ClipByValue Conj Cos Cosh Digamma "
    "Elu Erf Erfc Exit Exp Expm1 FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars "
    "FakeQuantWithMinMaxVarsPerChannel Floor Identity Inv Invert IsFinite IsInf IsNan LRN LeakyRelu Lgamma Log "
    "Log1p LogSoftmax LogicalNot LoopCond Neg NextIteration OnesLike PreventGradient QuantizeAndDequantizeV2 "
    "QuantizeAndDequantizeV3 QuantizeAndDequantizeV4 Reciprocal RefExit RefIdentity RefNextIteration Relu "
    "Relu6 Rint Round Rsqrt Selu Sigmoid Sign Sin Sinh Snapshot Softmax Softplus Softsign Sqrt Square StopGradient "
    "Tan Tanh ZerosLike"
).split()
BINARY = (
    "Add AddV2 Atan2 Div DivNoNan Equal FloorDiv FloorMod Greater GreaterEqual Less LessEqual LogicalAnd LogicalOr "
    "Maximum Minimum Mod Mul MulNoNan NotEqual Pow RealDiv SquaredDifference Sub TruncateDiv TruncateMod Xdivy "
    "Xlogy"
).split()
ShapeFn = Callable[[_Ctx], list[Shape]]
_SHAPE_FNS: dict[str, ShapeFn] = {
    **{op: lambda c: [c.shape(0)] for op in UNARY},
    **{op: lambda c: [_broadcast(c.shape(0), c.shape(1))] for op in BINARY},
    **{op: _reduce for op in ("Mean", "Sum", "Max", "Min", "Prod", "All", "Any", "EuclideanNorm")},
    **{op: _conv for op in ("Conv2D", "Conv3D", "DepthwiseConv2dNative")},
    **{op: _pool for op in ("MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D", "MaxPoolWithArgmax")},
    **{op: _fused_batch_norm for op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")},
    **{op: _resize for op in ("ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea")},
    **{op: lambda c: [c.as_shape(0)] for op in ("Fill", "RandomUniform", "RandomStandardNormal", "TruncatedNormal",
                                                 "RandomUniformInt", "Empty")},
    **{op: lambda c: [c.shape(0)] * 2 for op in ("Switch", "RefSwitch")},
    **{op: lambda c: [c.shape(0) if c.attr("is_constant", False) else None] for op in ("Enter", "RefEnter")},
    **{op: lambda c: [()] for op in ("Size", "Rank", "L2Loss")},
    **{op: lambda c: [_attr_shape(c.a, "shape")] for op in ("Placeholder", "PlaceholderWithDefault", "VariableV2")},
    "Const": lambda c: [protos.shape_of(c.a["value"].tensor.tensor_shape)],
    "IdentityN": lambda c: [c.shape(i) for i in range(c.n)],
    "AddN": lambda c: [reduce(_merge, (c.shape(i) for i in range(c.n)), None)],
    "BiasAdd": _bias_add, "BiasAddV1": _bias_add, "MatMul": _matmul, "BatchMatMul": _batch_matmul,
    "BatchMatMulV2": _batch_matmul, "BatchMatMulV3": _batch_matmul, "Conv2DBackpropInput": _conv_backprop_input,
    "ArgMax": _arg_reduce, "ArgMin": _arg_reduce, "Reshape": _reshape, "Squeeze": _squeeze, "Tile": _tile,
    "ExpandDims": _expand_dims, "ConcatV2": _concat_op, "Concat": _concat_op, "Pack": _pack, "Unpack": _unpack,
    "Split": _split, "SplitV": _split, "Transpose": _transpose, "Pad": _pad, "PadV2": _pad, "MirrorPad": _pad,
    "Slice": _slice, "StridedSlice": _strided_slice, "Range": _range, "GatherV2": _gather,
    "Shape": lambda c: [(_rank(c.shape(0)),)], "ShapeN": lambda c: [(_rank(c.shape(i)),) for i in range(c.n)],
    "SpaceToBatchND": _space_batch, "BatchToSpaceND": _space_batch, "Select": _select,
    "SelectV2": lambda c: [_broadcast(c.shape(0), _broadcast(c.shape(1), c.shape(2)))],
    "BroadcastTo": lambda c: [c.as_shape(1)], "Where": lambda c: [(None, _rank(c.shape(0)))],
    "EnsureShape": lambda c: [_merge(c.shape(0), _attr_shape(c.a, "shape"))],
}  # fmt: skip


# --- constant folding of the small tensors shapes are computed from ------------------------------------
FoldFn = Callable[[_Ctx, list[np.ndarray]], list[np.ndarray]]


def _fold_strided_slice(c: _Ctx, v: list[np.ndarray]) -> list[np.ndarray]:
    begin, end, strides = v[1].tolist(), v[2].tolist(), v[3].tolist()
    bm, em, ellipsis, new_axis, shrink = (c.attr(k) for k in _MASKS)
    index: list[Any] = []
    for i, s in enumerate(strides):
        if ellipsis >> i & 1 or new_axis >> i & 1:
            index.append(Ellipsis if ellipsis >> i & 1 else None)
        else:
            index.append(begin[i] if shrink >> i & 1 else slice(None if bm >> i & 1 else begin[i],
                                                                  None if em >> i & 1 else end[i], s))  # fmt: skip
    return [np.asarray(v[0][tuple(index)])]


def _fold_reduce(c: _Ctx, v: list[np.ndarray]) -> list[np.ndarray]:
    fn = {"Sum": np.sum, "Prod": np.prod, "Max": np.max, "Min": np.min}[c.op]
    axes = tuple(int(a) % max(v[0].ndim, 1) for a in v[1].reshape(-1))
    return [np.asarray(fn(v[0], axis=axes, keepdims=c.attr("keep_dims", False))).astype(v[0].dtype)]


def _binary_fold(fn: Callable[[Any, Any], Any]) -> FoldFn:
    return lambda c, v: [np.asarray(fn(v[0], v[1]))]


_FOLD: dict[str, FoldFn] = {
    **{op: (lambda c, v: [v[0]]) for op in ("Identity", "Snapshot", "StopGradient")},
    **{op: _fold_reduce for op in ("Sum", "Prod", "Max", "Min")},
    "Add": _binary_fold(np.add), "AddV2": _binary_fold(np.add), "Sub": _binary_fold(np.subtract),
    "Mul": _binary_fold(np.multiply), "FloorDiv": _binary_fold(np.floor_divide), "FloorMod": _binary_fold(np.mod),
    "Maximum": _binary_fold(np.maximum), "Minimum": _binary_fold(np.minimum), "RealDiv": _binary_fold(np.true_divide),
    "Neg": lambda c, v: [-v[0]],
    "Cast": lambda c, v: [v[0].astype(_numpy_dtype(c.a["DstT"].type))],
    "Fill": lambda c, v: [np.full([int(d) for d in v[0]], v[1])],
    "Pack": lambda c, v: [np.stack(v, axis=c.attr("axis"))],
    "Unpack": lambda c, v: list(np.moveaxis(v[0], c.attr("axis"), 0)),
    "ConcatV2": lambda c, v: [np.concatenate(v[:-1], axis=int(v[-1]))],
    "StridedSlice": _fold_strided_slice,
    "Slice": lambda c, v: [v[0][tuple(slice(b, None if n == -1 else b + n) for b, n in zip(v[1].tolist(), v[2]))]],
    "Reshape": lambda c, v: [v[0].reshape([int(d) for d in v[1].reshape(-1)])],
    "ExpandDims": lambda c, v: [np.expand_dims(v[0], int(v[1].reshape(-1)[0]))],
    "Squeeze": lambda c, v: [np.squeeze(v[0], axis=tuple(c.attr("squeeze_dims", [])) or None)],
    "Transpose": lambda c, v: [np.transpose(v[0], [int(p) for p in v[1]])],
    "Tile": lambda c, v: [np.tile(v[0], [int(m) for m in v[1]])],
    "GatherV2": lambda c, v: [] if c.attr("batch_dims") else [np.take(v[0], v[1], axis=int(v[2]))],
    "Range": lambda c, v: [np.arange(v[0].item(), v[1].item(), v[2].item(), dtype=v[0].dtype)],
}  # fmt: skip


def infer_shapes(graph_def: Any, seeds: dict[str, Shape] | None = None) -> dict[str, list[Shape]]:
    """{node name: [shape of each output]} for every node of a GraphDef (None = unknown).

    `seeds` set the shapes of named tensors ("op" or "op:k"): the user's `--inputs NAME:SHAPE`, which may
    cut the graph at an inner node. Shapes the exporter recorded (`_output_shapes`) fill unknown ones."""
    return _Engine(graph_def).run(dict(seeds or {}))
