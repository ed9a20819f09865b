"""Keras 1/2 weight arrays converted to the layout a Keras 3 layer expects.

Keras 1 stored one array per gate of a recurrent layer (12 for an LSTM, 9 for a GRU), Keras 1
Conv1D kernels as 4-D `(length, 1, in, out)`, Theano-ordered (`th`) convolution kernels as
`(out, in, rows, cols)`, and Keras 2 CuDNN layers a doubled bias and cuDNN's kernel order. Each
converter below fixes one of those and is chosen by the arrays it is given, never by a version
string. Everything else must already match the layer's shapes; a mismatch is reported by layer
with both shapes.
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


def _cell_class(layer: Any) -> str:
    """The class that decides the layout: the wrapped layer of Bidirectional/TimeDistributed."""
    inner = getattr(layer, "layer", None) or getattr(layer, "forward_layer", None)
    return type(inner).__name__ if inner is not None else type(layer).__name__


def convert_layer_arrays(layer: Any, arrays: Arrays, expected: Shapes, path: str, source: str) -> Arrays:
    """`arrays` as stored, reshaped into `expected` (the Keras 3 layer's weight shapes)."""
    if _matches(arrays, expected):
        return arrays
    cls = _cell_class(layer)
    if type(layer).__name__ == "Bidirectional" and len(arrays) % 2 == 0:
        half = len(arrays) // 2
        fwd = convert_layer_arrays(layer.forward_layer, arrays[:half], expected[: len(expected) // 2], path, source)
        bwd = convert_layer_arrays(layer.backward_layer, arrays[half:], expected[len(expected) // 2 :], path, source)
        return fwd + bwd
    for name, fn in CONVERTERS:
        if name != cls:
            continue
        out = fn(layer, arrays, expected)
        if out is not None and _matches(out, expected):
            return out
    got = [tuple(a.shape) for a in arrays]
    raise LoadError(f"{source}: layer {path!r} ({cls}) expects weights {expected}, the file stores {got}")


def _matches(arrays: Arrays, expected: Shapes) -> bool:
    return len(arrays) == len(expected) and all(tuple(a.shape) == tuple(e) for a, e in zip(arrays, expected))
