"""Keras 1/2 weight arrays converted to the layout a Keras 3 layer expects.

Keras 1 stored one array per gate of a recurrent layer (12 for an LSTM, 9 for a GRU), Keras 1
Conv1D kernels as 4-D `(length, 1, in, out)`, Theano-ordered (`th`) convolution kernels as
`(out, in, rows, cols)`, and Keras 2 CuDNN layers a doubled bias and cuDNN's kernel order. Each
converter below fixes one of those and is chosen by the class and the arrays it is given, never
by a version string. `migrate_layouts` applies the same-class ones once, where a loader joins
weights to their architecture; the cuDNN layout is converted where a CuDNN layer becomes an
LSTM/GRU (the rebuild), and `transfer-weights`/`diff` convert a weights-only file (which has no
architecture for its loader to go by) where it meets one. Everything else must already match the
layer's shapes; a mismatch is reported by layer with both shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modeltool.errors import LoadError

Arrays = list[np.ndarray]
Shapes = list[tuple]


def _keras1_lstm(layer: Any, arrays: Arrays, expected: Shapes) -> Arrays | None:
    """12 arrays W_i U_i b_i W_c U_c b_c W_f U_f b_f W_o U_o b_o -> kernel, recurrent, bias (i f c o)."""
    if len(arrays) != 12 or len(expected) != 3:
        return None
    order = [0, 6, 3, 9]  # i, f, c, o
    return [np.concatenate([arrays[k + j] for k in order], axis=-1) for j in range(3)]


def _keras1_gru(layer: Any, arrays: Arrays, expected: Shapes) -> Arrays | None:
    """9 arrays W_z U_z b_z W_r U_r b_r W_h U_h b_h -> kernel, recurrent, bias (z r h)."""
    if len(arrays) != 9 or len(expected) != 3:
        return None
    return [np.concatenate([arrays[k + j] for k in (0, 3, 6)], axis=-1) for j in range(3)]


def _cudnn_lstm(layer: Any, arrays: Arrays, expected: Shapes) -> Arrays | None:
    """CuDNNLSTM: bias (8u,) = input + recurrent biases, kernels in cuDNN's per-gate layout."""
    if len(arrays) != 3 or len(expected) != 3 or arrays[2].shape != (2 * expected[2][0],):
        return None
    gates = expected[2][0] // expected[1][0]
    kernel = np.hstack([k.T.reshape(k.shape, order="F") for k in np.hsplit(arrays[0], gates)])
    recurrent = np.hstack([k.T for k in np.hsplit(arrays[1], gates)])
    bias = np.sum(np.split(arrays[2], 2), axis=0)
    return [kernel, recurrent, bias]


def _cudnn_gru(layer: Any, arrays: Arrays, expected: Shapes) -> Arrays | None:
    """CuDNNGRU: bias (6u,) becomes Keras's reset_after bias of shape (2, 3u)."""
    if len(arrays) != 3 or len(expected) != 3 or arrays[2].shape != (int(np.prod(expected[2])),):
        return None
    if len(expected[2]) != 2:
        return None
    gates = 3
    kernel = np.hstack([k.T.reshape(k.shape, order="F") for k in np.hsplit(arrays[0], gates)])
    recurrent = np.hstack([k.T for k in np.hsplit(arrays[1], gates)])
    return [kernel, recurrent, arrays[2].reshape(expected[2])]


def _keras1_conv1d(layer: Any, arrays: Arrays, expected: Shapes) -> Arrays | None:
    """Keras 1 Conv1D kernel `(length, 1, in, out)` -> `(length, in, out)`."""
    if not arrays or arrays[0].ndim != 4 or len(expected[0]) != 3:
        return None
    kernel = arrays[0]
    if kernel.shape[1] != 1:
        kernel = np.transpose(kernel, (3, 2, 0, 1))  # `th` ordering: (out, in, length, 1)
        if kernel.shape[1] != 1:
            return None
    return [kernel[:, 0, :, :], *arrays[1:]]


def _theano_conv(layer: Any, arrays: Arrays, expected: Shapes) -> Arrays | None:
    """`dim_ordering='th'` convolution kernels `(out, in, *window)` -> Keras's `(*window, in, out)`."""
    if not arrays or arrays[0].ndim not in (4, 5) or arrays[0].shape == expected[0]:
        return None
    nd = arrays[0].ndim
    kernel = np.transpose(arrays[0], (*range(2, nd), 1, 0))
    if kernel.shape != expected[0]:
        return None
    return [kernel, *arrays[1:]]


CONVERTERS: list[tuple[str, Callable[[Any, Arrays, Shapes], Arrays | None]]] = [
    ("LSTM", _keras1_lstm),
    ("GRU", _keras1_gru),
    ("LSTM", _cudnn_lstm),
    ("GRU", _cudnn_gru),
    ("Conv1D", _keras1_conv1d),
    ("Conv2D", _theano_conv),
    ("Conv3D", _theano_conv),
]


def convert_layer_arrays(
    cls: str, arrays: Arrays, expected: Shapes, path: str, source: str, *, cell: str | None = None
) -> Arrays:
    """`arrays` as stored for a layer of class `cls` (a wrapper's wrapped class as `cell`), reshaped
    into `expected` (the Keras 3 layer's weight shapes)."""
    if _matches(arrays, expected):
        return arrays
    inner = cell or cls
    if cls == "Bidirectional" and len(arrays) % 2 == 0 and len(expected) % 2 == 0:
        half, want = len(arrays) // 2, len(expected) // 2
        fwd = convert_layer_arrays(inner, arrays[:half], expected[:want], path, source)
        bwd = convert_layer_arrays(inner, arrays[half:], expected[want:], path, source)
        return fwd + bwd
    for name, fn in CONVERTERS:
        if name != inner.removeprefix("CuDNN"):
            continue
        out = fn(None, arrays, expected)
        if out is not None and _matches(out, expected):
            return out
    got = [tuple(a.shape) for a in arrays]
    raise LoadError(f"{source}: layer {path!r} ({inner}) expects weights {expected}, the file stores {got}")


def wrapped_class(config: Any) -> str | None:
    """The class a Bidirectional/TimeDistributed layer config wraps, if any."""
    if not isinstance(config, dict):
        return None
    inner = config.get("layer") or config.get("forward_layer")
    return inner.get("class_name") if isinstance(inner, dict) else None


def keras3_shapes(node: Any) -> Shapes | None:
    """The weight shapes the layer of `node` has in Keras 3, when its class exists there and they
    are known. CuDNN layers are left as stored: their class changes (to LSTM/GRU, with other bias
    shapes and parameter counts) only when a model is rebuilt, which converts them then."""
    if node.op in ("CuDNNLSTM", "CuDNNGRU"):
        return None
    shapes = [tuple(s.shape) for s in node.attrs.get("weight_specs") or []]
    if not shapes or any(d is None for shape in shapes for d in shape):
        return None
    return shapes


def migrate_layouts(model: Any) -> list[str]:
    """Once, where architecture and weights meet (the loader): every layer whose stored arrays are
    in a legacy layout (Keras 1 per-gate RNN arrays, Keras 1 Conv1D, Theano or cuDNN kernels) gets
    its weights in the Keras 3 layout, converted lazily when a value is first read, so rebuild,
    transfer and diff all see one layout. Returns a note per layer converted."""
    from modeltool.ir import Weight

    if model.graph is None or not model.weights:
        return []
    by_layer: dict[str, list[int]] = {}
    for i, w in enumerate(model.weights):
        by_layer.setdefault(w.layer or "", []).append(i)
    notes, replaced = [], {}
    for path, node in model.graph.walk():
        idx = by_layer.get(path)
        expected = keras3_shapes(node)
        if not idx or expected is None:
            continue
        stored = [model.weights[i] for i in idx]
        if [tuple(w.shape) for w in stored] == expected:
            continue
        if not _convertible(node.op, [tuple(w.shape) for w in stored], expected, wrapped_class(node.config)):
            continue
        specs = node.attrs.get("weight_specs") or []
        lazy = _LazyConversion(node.op, stored, expected, path, model.path, wrapped_class(node.config))
        fresh = [Weight("/".join(p for p in (path, spec.prefix, spec.role) if p), path, spec.role, shape,
                        stored[0].dtype, spec.trainable and stored[0].trainable, lazy.reader(k))
                 for k, (spec, shape) in enumerate(zip(specs, expected))]  # fmt: skip
        replaced[idx[0]] = fresh
        replaced.update({i: [] for i in idx[1:]})
        notes.append(f"{path} ({node.op}): {len(stored)} stored arrays converted to Keras 3's {len(expected)}")
    if replaced:
        model.weights[:] = [w for i, old in enumerate(model.weights) for w in replaced.get(i, [old])]
    return notes


def _convertible(cls: str, stored: Shapes, expected: Shapes, cell: str | None) -> bool:
    """Whether a converter applies, judged on shapes alone (no value is read while loading)."""
    probe = [np.zeros(s, dtype=np.float32) if int(np.prod(s)) < 1 << 16 else np.lib.stride_tricks.as_strided(
        np.zeros(1, np.float32), s, [0] * len(s)) for s in stored]  # fmt: skip
    try:
        convert_layer_arrays(cls, probe, expected, "", "", cell=cell)
    except (LoadError, ValueError):
        return False
    return True


class _LazyConversion:
    """The converted arrays of one layer, computed on the first read of any of them."""

    def __init__(self, cls: str, stored: list, expected: Shapes, path: str, source: str, cell: str | None) -> None:
        self.args = (cls, stored, expected, path, source, cell)
        self.arrays: Arrays | None = None

    def reader(self, k: int) -> Callable[[], Any]:
        def read() -> Any:
            if self.arrays is None:
                cls, stored, expected, path, source, cell = self.args
                values = [np.asarray(w.value()) for w in stored]
                self.arrays = convert_layer_arrays(cls, values, expected, path, source, cell=cell)
            yield self.arrays[k]

        return read


def _matches(arrays: Arrays, expected: Shapes) -> bool:
    return len(arrays) == len(expected) and all(tuple(a.shape) == tuple(e) for a, e in zip(arrays, expected))
