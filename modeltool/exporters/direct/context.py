"""What a layer converter is given: the graph being written (`Context`) and the layer call (`Layer`).

A converter is `fn(ctx, layer, inputs) -> outputs`: `inputs` and `outputs` are `Value`s, one per
Keras tensor. It writes nodes through `ctx.op(...)` (named under the layer's path), constants through
`ctx.const(...)`, and reads the layer's weights as numpy through `layer.array(role)`: the IR's weights,
legacy layouts already converted by the loader. When a layer's configuration asks for something the
direct route does not write, the converter raises `layer.refuse(reason)`: the route then names the
layer and the reason, and `--via auto` converts the model through TensorFlow instead.

A custom layer class (from the user's `--custom-objects` module) takes part by defining
`modeltool_onnx(ctx, layer, inputs)` with the same meaning (see docs/convert.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modeltool.errors import UnsupportedError
from modeltool.exporters.direct.builder import GraphBuilder, Value
from modeltool.ir import Weight


class NotCovered(UnsupportedError):
    """The direct route has no converter for a layer, or not for the way it is configured."""

    def __init__(self, path: str, op: str, reason: str) -> None:
        super().__init__(f"layer {path!r} ({op}): {reason}")
        self.path, self.op, self.reason = path, op, reason


@dataclass
class Layer:
    """One call of one layer. `path` names its nodes (`outer/inner/name`, `name@1` for a shared
    layer's second call); `weights_path` is where its weights live; `args`/`kwargs` are the call's
    arguments as the config records them (tensors as `TENSOR`, constants as written)."""

    path: str
    weights_path: str
    cls: str
    config: dict[str, Any]
    generation: int
    weights: list[Weight] = field(default_factory=list)
    out_shapes: list[Any] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    module: str | None = None

    def refuse(self, reason: str) -> NotCovered:
        return NotCovered(self.path, self.cls, reason)

    def arrays(self) -> list[np.ndarray]:
        """Every weight's value, in stored order."""
        return [np.asarray(w.value()) for w in self.weights]

    def array(self, role: str, index: int = 0) -> np.ndarray:
        """The `index`-th weight with role `role` (forward before backward for Bidirectional)."""
        found = [w for w in self.weights if w.role == role]
        if len(found) <= index:
            have = ", ".join(w.role for w in self.weights) or "none"
            raise self.refuse(f"no stored weight {role!r} (the file has: {have})")
        return np.asarray(found[index].value())

    def has(self, role: str) -> bool:
        return any(w.role == role for w in self.weights)

    def slots(self) -> list[str]:
        """Names of the call's tensor arguments, in the order the IR lists the layer's inputs:
        positional ones `arg0`, `arg1` (`arg0.1` inside a list), then keyword ones (`mask`, `mask.1`)."""
        out: list[str] = []
        for i, arg in enumerate(self.args):
            _slots(arg, f"arg{i}", out)
        for key, value in self.kwargs.items():
            _slots(value, key, out)
        return out

    def named(self, fragment: str) -> list[Weight]:
        """Weights whose names contain `fragment` (MultiHeadAttention's `query/kernel`, ...)."""
        return [w for w in self.weights if fragment in w.name]


#: stands for a tensor argument in `Layer.args`
TENSOR = object()


def _slots(value: Any, name: str, out: list[str]) -> None:
    if value is TENSOR:
        out.append(name)
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            _slots(item, f"{name}.{k}", out)
    elif isinstance(value, dict):
        for key, item in value.items():
            _slots(item, f"{name}.{key}", out)


class Context:
    """The graph being written and the conversion-wide facts (opset, writer generation)."""

    def __init__(self, builder: GraphBuilder, generation: int,
                 dispatch: Callable[[Layer, list[Value]], list[Value]] | None = None) -> None:  # fmt: skip
        self.builder = builder
        self.generation = generation
        self.scope = ""
        self.notes: list[str] = []
        #: converts one layer call (wrappers convert the layer they wrap through it)
        self.dispatch: Callable[[Layer, list[Value]], list[Value]] = dispatch or _no_dispatch

    @property
    def opset(self) -> int:
        return self.builder.opset

    def op(self, op_type: str, inputs: list[str | Value], **attrs: Any) -> str:
        """One node with one output, named under the current layer; returns the output's name."""
        return self.ops(op_type, inputs, 1, **attrs)[0]

    def ops(self, op_type: str, inputs: list[str | Value], outputs: int, **attrs: Any) -> list[str]:
        names = [i.name if isinstance(i, Value) else i for i in inputs]
        return self.builder.node(op_type, names, self.scope, outputs, **attrs)

    def const(self, value: Any, role: str = "const", dtype: Any = None) -> str:
        return self.builder.const(value, f"{self.scope}/{role}" if self.scope else role, dtype)

    def ints(self, values: Any) -> str:
        return self.builder.int64s(list(values) if not np.isscalar(values) else values)

    def producer_op(self, name: str) -> str | None:
        node = self.builder.producer.get(name)
        return node.op_type if node is not None else None

    # ---------------------------------------------------------------- opset-dependent spellings

    def reduce(self, op_type: str, x: str | Value, axes: list[int], keepdims: bool) -> str:
        """ReduceMean/Max/Sum...: axes became an input in opset 18 (ReduceSum in 13)."""
        moved = 13 if op_type == "ReduceSum" else 18
        if self.opset >= moved:
            return self.op(op_type, [x, self.ints(axes)], keepdims=int(keepdims))
        return self.op(op_type, [x], axes=list(axes), keepdims=int(keepdims))

    def squeeze(self, x: str | Value, axes: list[int]) -> str:
        return self.op("Squeeze", [x, self.ints(axes)])

    def unsqueeze(self, x: str | Value, axes: list[int]) -> str:
        return self.op("Unsqueeze", [x, self.ints(axes)])

    def reshape(self, x: str | Value, shape: list[int]) -> str:
        return self.op("Reshape", [x, self.ints(shape)])

    def split(self, x: str | Value, sizes: list[int], axis: int) -> list[str]:
        return self.ops("Split", [x, self.ints(sizes)], len(sizes), axis=axis)


def _no_dispatch(layer: Layer, inputs: list[Value]) -> list[Value]:
    raise layer.refuse("no converter table in this context")


def onnx_dtype(dtype: str) -> int:
    """The ONNX element type of a numpy dtype name."""
    from modeltool.deps import require

    onnx = require("onnx")
    return int(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
