"""Keras models (Keras 3 rebuilt from any Keras file by `keras.rebuild`, or tf_keras for the
writer's own reference) run in inference mode.

Models with channels-first layers run compiled by XLA: TensorFlow's own CPU kernels implement
NCHW convolutions and pooling only when it is built with oneDNN enabled, which it leaves off on
AMD and ARM CPUs, while XLA lowers every layout on every CPU. The reference must run anywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modeltool.deps import require
from modeltool.errors import UnsupportedError, UsageError
from modeltool.ir import Model, TensorSpec
from modeltool.runners.base import Feed, Runner


class KerasRunner(Runner):
    backend = "keras"

    def __init__(
        self, native: Any, ir: Model | None = None, label: str | None = None, runtime: str = "Keras 3"
    ) -> None:
        super().__init__(label or (ir.path if ir is not None else getattr(native, "name", "keras model")))
        self.native, self.ir = native, ir
        self.runtime = runtime
        self.xla = has_channels_first(native)
        self.provider = f"{runtime} on TensorFlow (CPU{', XLA' if self.xla else ''})"
        self._call: Any = None
        #: which reference this is and why, when it is one (see keras_reference)
        self.reference: str | None = None

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
        out = self._callable()(args if len(args) > 1 else args[0])
        outs = list(out.values()) if isinstance(out, dict) else (list(out) if isinstance(out, (list, tuple)) else [out])
        return {name: np.asarray(v) for name, v in zip(self.output_names(), outs)}

    def _callable(self) -> Any:
        if self._call is None:
            native = self.native
            self._call = lambda x: native(x, training=False)
            if self.xla:
                import tensorflow as tf

                self._call = tf.function(self._call, jit_compile=True)
        return self._call


def has_channels_first(native: Any) -> bool:
    """True when any layer (nested models and wrappers included) computes in channels-first layout."""
    stack = list(getattr(native, "layers", []))
    while stack:
        layer = stack.pop()
        if getattr(layer, "data_format", None) == "channels_first":
            return True
        stack += list(getattr(layer, "layers", []) or [])
        for attr in ("layer", "forward_layer", "backward_layer"):
            inner = getattr(layer, attr, None)
            if inner is not None and inner is not layer:
                stack.append(inner)
    return False


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


#: how `convert`/`verify` compute the reference of a Keras source
REFERENCE_MODES = ("writer", "rebuild")


def keras_reference(
    ir: Model, rebuild: Callable[[], Any], mode: str | None = None, custom_objects: dict[str, Any] | None = None
) -> KerasRunner:
    """The reference runner of a Keras file: the writer's runtime (tf_keras for Keras 1/2 files)
    when `mode` is "writer" or unset and it can run the file, else modeltool's Keras 3 rebuild
    (`rebuild()` builds it). `runner.reference` says which and why."""
    from modeltool.keras.tfkeras import build_tf_keras, runtime_label, writer_unavailable

    if mode not in (None, *REFERENCE_MODES):
        raise UsageError(f"--reference {mode!r}: choose one of {', '.join(REFERENCE_MODES)}")
    why = writer_unavailable(ir, custom_objects) if mode != "rebuild" else "--reference rebuild"
    if why is None:
        label = runtime_label()
        runner = KerasRunner(build_tf_keras(ir), ir, runtime=label)
        runner.reference = f"writer: {label}, the Keras 2 runtime, from modeltool's checked config and weights"
        return runner
    if mode == "writer":
        raise UsageError(f"{ir.path}: --reference writer is not possible: {why}")
    keras = require("keras", "running the reference")

    runner = KerasRunner(rebuild(), ir, runtime=f"Keras {keras.__version__}")
    runner.reference = f"rebuild: modeltool's Keras {keras.__version__} rebuild ({why})"
    return runner
