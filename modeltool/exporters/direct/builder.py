"""The ONNX graph being written: nodes, initializers, unique names, and the tensors between layers.

A `Value` is one Keras tensor as it exists in the ONNX graph: its name, its Keras (logical) shape and
dtype, and `perm`, the order its axes are physically held in. ONNX convolutions compute
channels-first and Keras channels-last; rather than wrapping every convolution in a pair of
transposes (and removing them again afterwards, as tf2onnx's optimizer must), a value remembers that
its data is held channels-first, and a transpose is written only where a layer needs another order (a
Flatten, a Dense over the last axis, a model output). `--inputs-as-nchw` starts an input in that order.

Names: every node and tensor is named `<layer path>/<op>` (nested models as `outer/inner/layer`), so
the ONNX file reads like the Keras model and `verify --localize` pairs tensors with layers by name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from modeltool.deps import require

#: integer constants up to this many bytes (axes, shapes) and scalars are shared between the nodes that
#: need the same value; weights never are (a fold rewriting one must not change another)
SHARED_CONSTANT_BYTES = 256


@dataclass(frozen=True)
class Value:
    """A Keras tensor in the ONNX graph. `shape` is Keras's (None for dims unknown until run time);
    physical axis i holds logical axis `perm[i]` (`perm` None: held in Keras's own order). `mask` is
    the ONNX name of the boolean (batch, time) mask Keras propagates beside the tensor, if any."""

    name: str
    shape: tuple
    dtype: str = "float32"
    perm: tuple[int, ...] | None = None
    mask: str | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def physical_shape(self) -> tuple:
        return self.shape if self.perm is None else tuple(self.shape[p] for p in self.perm)

    def axis(self, logical: int) -> int:
        """Where logical axis `logical` (negative counts from the end) is held."""
        logical %= self.rank
        return logical if self.perm is None else self.perm.index(logical)

    def but(self, **changes: Any) -> Value:
        return replace(self, **changes)


class GraphBuilder:
    """Nodes in the order written, initializers by name (their values as numpy arrays: a
    TensorProto is made only when the model is, or never for weights streamed to an external data
    file), and the names in use."""

    def __init__(self, opset: int) -> None:
        self.onnx = require("onnx", "writing ONNX")
        self.opset = opset
        self.nodes: list[Any] = []
        self.arrays: dict[str, np.ndarray] = {}  # initializer values, by name
        self.producer: dict[str, Any] = {}  # tensor name -> the node writing it
        self._used: set[str] = set()
        self._shared: dict[tuple, str] = {}

    def unique(self, base: str) -> str:
        """`base`, or `base_1`, `base_2`, ... whichever is still free (node and tensor names)."""
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def reserve(self, name: str) -> None:
        """Take a name that must stay exactly as given (graph inputs)."""
        self._used.add(name)

    def node(self, op_type: str, inputs: list[str], scope: str, outputs: int = 1, **attrs: Any) -> list[str]:
        """Append one node named `<scope>/<op_type>`; returns its output names (empty inputs stay '')."""
        name = self.unique(f"{scope}/{op_type}" if scope else op_type)
        outs = [name] + [self.unique(f"{name}:{k}") for k in range(1, outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = self.onnx.helper.make_node(op_type, inputs, outs, name=name, **attrs)
        self.nodes.append(node)
        for out in outs:
            self.producer[out] = node
        return outs

    def const(self, value: Any, name: str, dtype: Any = None) -> str:
        """An initializer holding `value` (small ones shared by value, large ones named `name`)."""
        array = np.asarray(value, dtype=dtype)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        key = None
        if array.nbytes <= SHARED_CONSTANT_BYTES and (array.dtype.kind in "iub" or array.size == 1):
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._shared:
                return self._shared[key]
        unique = self.unique(name)
        self.arrays[unique] = np.asarray(array, order="C")
        if key is not None:
            self._shared[key] = unique
        return unique

    def int64s(self, values: Any, name: str = "const/ints") -> str:
        return self.const(np.asarray(values, dtype=np.int64), name)

    def consumers(self) -> dict[str, int]:
        """How many node inputs read each tensor."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            for name in node.input:
                counts[name] = counts.get(name, 0) + 1
        return counts

    def prune(self, outputs: list[str]) -> int:
        """Drop nodes whose outputs nothing reads (no graph output either) and unused initializers;
        returns how many nodes went."""
        keep = set(outputs)
        alive: list[Any] = []
        for node in reversed(self.nodes):
            if any(out in keep for out in node.output):
                alive.append(node)
                keep.update(i for i in node.input if i)
        removed = len(self.nodes) - len(alive)
        self.nodes = alive[::-1]
        for name in [n for n in self.arrays if n not in keep]:
            del self.arrays[name]
        self._shared = {k: v for k, v in self._shared.items() if v in self.arrays}
        return removed

    def replace_initializer(self, name: str, array: np.ndarray) -> None:
        self.arrays[name] = np.asarray(array.astype(self.arrays[name].dtype, copy=False), order="C")
        self._shared = {k: v for k, v in self._shared.items() if v != name}
