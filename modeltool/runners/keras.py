"""Keras 3 models (rebuilt from any Keras file by `keras.rebuild`) run in inference mode."""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.errors import UnsupportedError
from modeltool.ir import Model, TensorSpec
from modeltool.runners.base import Feed, Runner


class KerasRunner(Runner):
    backend = "keras"

    def __init__(self, native: Any, ir: Model | None = None, label: str | None = None) -> None:
        super().__init__(label or (ir.path if ir is not None else getattr(native, "name", "keras model")))
        self.native, self.ir = native, ir
        self.provider = "TensorFlow (CPU)"

    def _activate(self) -> None:
        pass

    def input_specs(self) -> list[TensorSpec]:
        ins, _ = keras_io(self.native)
        names = _ir_names(self.ir, "inputs", len(ins))
        return [TensorSpec(name, t.shape, t.dtype) for name, t in zip(names, ins)]

    def output_names(self) -> list[str]:
        return _ir_names(self.ir, "outputs", keras_io(self.native)[1])

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        args = [feed[spec.name] for spec in self.input_specs()]
        out = self.native(args if len(args) > 1 else args[0], training=False)
        outs = list(out.values()) if isinstance(out, dict) else (list(out) if isinstance(out, (list, tuple)) else [out])
        return {name: np.asarray(v) for name, v in zip(self.output_names(), outs)}


def keras_io(native: Any) -> tuple[list[TensorSpec], int]:
    """(input specs with Keras's names, number of outputs); subclassed models have no symbolic
    inputs, so their build shape stands in (batch made dynamic)."""
    try:
        inputs, outputs = native.inputs, native.outputs
    except AttributeError:
        inputs = outputs = None
    if inputs:
        specs = [TensorSpec(t.name, tuple(t.shape), str(getattr(t.dtype, "name", t.dtype))) for t in inputs]
        return specs, len(outputs)
    shape = (native.get_build_config() or {}).get("input_shape")
    if not isinstance(shape, (list, tuple)) or not shape or isinstance(shape[0], (list, tuple, dict)):
        raise UnsupportedError(f"{native.name}: a subclassed model with several or unknown inputs cannot be exported")
    return [TensorSpec("input", (None, *shape[1:]), "float32")], 1


def _ir_names(ir: Model | None, side: str, count: int) -> list[str]:
    """Boundary names as the source file states them; Keras's own names when there is no IR."""
    if ir is not None and ir.graph is not None:
        specs = getattr(ir.graph, side)
        if len(specs) == count:
            return [s.name for s in specs]
    return [f"{side[:-1]}_{i}" for i in range(count)]
