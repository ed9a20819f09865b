"""What a TFLite lowering is given: the model being written (`LiteContext`) and the layer call.

A lowering is `fn(ctx, layer, inputs) -> outputs`, the same shape as a direct ONNX converter and
walked by the same `Walker` over the same IR, with the same `Layer` (weights by role, the call's
arguments) and the same `Value`s (a Keras tensor: here its `name` is the TFLite tensor's name).
Everything stays in Keras's own axis order (NHWC): TFLite computes channels-last, so no transposes
are written for Keras's channels-last layers, and channels-first layers are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import Layer
from modeltool.exporters.litert.flatbuffer import LiteModel, schema

#: the schema's fused activation names
FUSED = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}


def options(kind: str, **fields: Any) -> Any:
    """A builtin options object (`Conv2DOptions`, ...) with the given fields set."""
    obj = getattr(schema(), kind + "T")()
    for key, value in fields.items():
        if not hasattr(obj, key):
            raise AttributeError(f"{kind} has no field {key}")
        setattr(obj, key, value)
    return obj


class LiteContext:
    """The subgraph being written and the conversion-wide facts (writer generation)."""

    def __init__(self, model: LiteModel, generation: int) -> None:
        self.model = model
        self.generation = generation
        self.scope = ""
        self.notes: list[str] = []
        #: how layers were lowered where there was a choice (recurrent layers), for the report
        self.decisions: list[str] = []
        self.by_name: dict[str, int] = {}
        self.dispatch: Callable[[Layer, list[Value]], list[Value]] = _no_dispatch

    def index(self, value: Value | int) -> int:
        return value if isinstance(value, int) else self.by_name[value.name]

    def tensor(self, name: str, shape: tuple, dtype: str = "float32") -> Value:
        """A tensor without data named under the current layer."""
        full = f"{self.scope}/{name}" if self.scope else name
        index = self.model.tensor(full, shape, dtype)
        real = self.model.tensors[index].name
        self.by_name[real] = index
        return Value(real, tuple(shape), dtype)

    def op(self, op: str, inputs: list[Value | int], shape: tuple, dtype: str = "float32", opts: Any = None,
           version: int = 1) -> Value:  # fmt: skip
        """One operator with one output of `shape` (Keras's, None for open dims)."""
        out = self.tensor(op.lower(), shape, dtype)
        self.model.add(op, [self.index(i) for i in inputs], [self.by_name[out.name]], opts, version)
        return out

    def ops(self, op: str, inputs: list[Value | int], shapes: list[tuple], dtype: str = "float32",
            opts: Any = None) -> list[Value]:  # fmt: skip
        """One operator with several outputs (SPLIT, UNPACK), one per shape."""
        outs = [self.tensor(op.lower(), shape, dtype) for shape in shapes]
        self.model.add(op, [self.index(i) for i in inputs], [self.by_name[o.name] for o in outs], opts)
        return outs

    def const(self, value: Any, role: str = "const", dtype: str | None = None) -> int:
        array = np.asarray(value, dtype=dtype) if dtype else np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.dtype == np.int64:
            array = array.astype(np.int32)
        index = self.model.constant(f"{self.scope}/{role}" if self.scope else role, array)
        self.by_name[self.model.tensors[index].name] = index  # a constant can stand as a Value too
        return index

    def const_value(self, value: Any, role: str = "const") -> Value:
        """A constant as a Value (an operand some lowerings pass on like a computed tensor)."""
        index = self.const(value, role)
        t = self.model.tensors[index]
        return Value(t.name, tuple(t.shape), t.dtype)

    def ints(self, values: Any) -> int:
        return self.const(np.asarray(values, dtype=np.int32).reshape(-1) if not np.isscalar(values) else
                          np.int32(values), "shape")  # fmt: skip

    def scalar(self, value: float) -> int:
        return self.const(np.float32(value), "scalar")

    # ---------------------------------------------------------------- common shapes of ops

    def unary(self, op: str, x: Value, opts: Any = None) -> Value:
        return self.op(op, [x], x.shape, x.dtype, opts)

    def binary(self, op: str, a: Value, b: Value | int, shape: tuple | None = None) -> Value:
        return self.op(op, [a, b], shape if shape is not None else a.shape, a.dtype,
                       options(op.title().replace("_", "") + "Options") if op in BINARY_OPTIONS else None)  # fmt: skip

    def reshape(self, x: Value, shape: tuple) -> Value:
        """Reshape to `shape` (Keras's; one open dim, the batch, written -1)."""
        if sum(d is None for d in shape) > 1:
            raise ValueError(f"cannot reshape to {shape}: more than one open dim")
        target = [-1 if d is None else int(d) for d in shape]
        return self.op("RESHAPE", [x, self.ints(target)], tuple(shape), x.dtype,
                       options("ReshapeOptions", newShape=target))  # fmt: skip


#: binary ops whose options table exists (ADD/MUL/SUB/DIV carry a fused activation)
BINARY_OPTIONS = ("ADD", "MUL", "SUB", "DIV")


def _no_dispatch(layer: Layer, inputs: list[Value]) -> list[Value]:
    raise layer.refuse("no lowering table in this context")
