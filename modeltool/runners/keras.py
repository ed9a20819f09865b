"""Keras models (Keras 3 rebuilt from any Keras file by `keras.rebuild`, or tf_keras for the
writer's own reference) run in inference mode, on the Keras backend installed (TensorFlow, or JAX
on the light install without TensorFlow).

On TensorFlow, models with channels-first layers run compiled by XLA: TensorFlow's own CPU kernels
implement NCHW convolutions and pooling only when it is built with oneDNN enabled, which it leaves
off on AMD and ARM CPUs, while XLA lowers every layout on every CPU. The reference must run anywhere.
JAX compiles every layout through XLA already."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modeltool.deps import require
from modeltool.errors import UnsupportedError, UsageError
from modeltool.ir import Model, TensorSpec
from modeltool.keras.calls import flat_outputs, keras_output_names, pack_inputs
from modeltool.runners.base import Feed, Runner


class KerasRunner(Runner):
    backend = "keras"

    def __init__(
        self, native: Any, ir: Model | None = None, label: str | None = None, runtime: str = "Keras 3"
    ) -> None:
        super().__init__(label or (ir.path if ir is not None else getattr(native, "name", "keras model")))
        self.native, self.ir = native, ir
        self.runtime = runtime
        self.keras_backend = backend_of(native)
        # only TensorFlow lacks NCHW CPU kernels; JAX compiles every layout with XLA anyway
        self.xla = self.keras_backend == "tensorflow" and has_channels_first(native)
        self.provider = f"{runtime} on {BACKEND_NAMES.get(self.keras_backend, self.keras_backend)} (CPU" + (
            ", XLA)" if self.xla else ")")  # fmt: skip
        self._call: Any = None
        #: which reference this is and why, when it is one (see keras_reference)
        self.reference: str | None = None

    def _activate(self) -> None:
        pass

    def input_specs(self) -> list[TensorSpec]:
        ins, _ = keras_io(self.native)
        names = _ir_names(self.ir, "inputs", len(ins), [t.name.split(":")[0] for t in ins])
        return [TensorSpec(name, t.shape, t.dtype) for name, t in zip(names, ins)]

    def output_names(self) -> list[str]:
        return _ir_names(self.ir, "outputs", keras_io(self.native)[1], keras_output_names(self.native))

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        args = [feed[spec.name] for spec in self.input_specs()]
        outs = flat_outputs(self._callable()(pack_inputs(self.native, args)))
        return {name: np.asarray(v) for name, v in zip(self.output_names(), outs)}

    def _callable(self) -> Any:
        if self._call is None:
            native = self.native
            self._call = lambda x: native(x, training=False)
            if self.xla:
                import tensorflow as tf

                self._call = tf.function(self._call, jit_compile=True)
            elif self.keras_backend == "jax":
                self._call = _jax_call(native)
        return self._call


    def _intermediates(self, feed: Feed) -> list[tuple[str, np.ndarray]]:
        """Every layer's output (nested models' layers too, as `outer/inner`), in topological order,
        from one model that returns them all (a second, dedicated call per nested model)."""
        args = [feed[spec.name] for spec in self.input_specs()]
        x = args if len(args) > 1 else args[0]  # the flat inputs of `_layer_outputs`'s own model
        out: list[tuple[str, Any]] = []
        _layer_outputs(self.native, x, "", out, self.xla)
        return out

    def layer_inputs(self) -> dict[str, list[str]]:
        """{layer path: the layer paths it reads}, from the IR's graph (inputs to a nested model
        come from the outer layers that feed it)."""
        if self.ir is None or self.ir.graph is None:
            return {}
        out: dict[str, list[str]] = {}
        for path, node in self.ir.graph.walk():
            prefix = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
            out[path] = [prefix + name.split(":")[0].split("@")[0] for call in node.inbound[:1] for name in call]
        return out


def _jax_call(native: Any) -> Any:
    """The model's inference call compiled once by XLA, as Keras's own `predict` runs it on JAX (run
    op by op, each op is compiled on first use: seconds for a MobileNetV2)."""
    jax = require("jax")
    step = jax.jit(lambda trainable, other, x: native.stateless_call(trainable, other, x, training=False)[0])

    def call(x: Any) -> Any:
        return step([v.value for v in native.trainable_variables], [v.value for v in native.non_trainable_variables],
                    x)  # fmt: skip

    return call


def _layer_outputs(model: Any, x: Any, prefix: str, out: list[tuple[str, Any]], xla: bool) -> None:
    """Outputs of `model`'s layers on `x`, appended as (path, value); nested models are entered.
    Channels-first models run compiled by XLA, as their plain run does (any CPU)."""
    layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"]
    if not layers or not getattr(model, "inputs", None):
        return
    nodes = _graph_nodes(model)
    layers = [layer for layer in layers if id(layer) in nodes]
    tensors = [nodes[id(layer)][1] for layer in layers]
    module = require("tf_keras") if type(model).__module__.startswith("tf_keras") else require("keras")
    multi = module.Model(model.inputs, tensors)

    def call(v: Any) -> Any:
        return multi(v, training=False)

    if xla:
        call = require("tensorflow").function(call, jit_compile=True)
    values = call(x)
    values = values if isinstance(values, (list, tuple)) else [values]
    for layer, value in zip(layers, values):
        path = f"{prefix}{layer.name}"
        is_model = type(layer).__name__ in ("Functional", "Sequential", "Model") and hasattr(layer, "layers")
        if is_model:
            inner_in = _inputs_of(model, layer, x, nodes, layers, values)
            if inner_in is not None:
                _layer_outputs(layer, inner_in, path + "/", out, xla)
        for k, v in enumerate(value if isinstance(value, (list, tuple)) else [value]):
            out.append((path if k == 0 else f"{path}:{k}", np.asarray(v)))


def _graph_nodes(model: Any) -> dict[int, tuple[list, Any]]:
    """{id(layer): (its input tensors, its output tensor(s)) in `model`'s own graph}, first call. A
    layer's `.output` may belong to another graph (a nested model's own, a shared layer's other
    call); the model's nodes do not."""
    graph = getattr(model, "_functional", None) or model
    out: dict[int, tuple[list, Any]] = {}
    for depth in sorted(getattr(graph, "_nodes_by_depth", {}) or {}, reverse=True):  # inputs first
        for node in graph._nodes_by_depth[depth]:
            op = getattr(node, "operation", None) or getattr(node, "layer", None)
            tensors = getattr(node, "outputs", None)
            if tensors is None:
                tensors = getattr(node, "output_tensors", None)
            if op is None or tensors is None or id(op) in out:
                continue
            tensors = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
            sources = getattr(node, "input_tensors", None)
            sources = list(sources) if isinstance(sources, (list, tuple)) else ([] if sources is None else [sources])
            out[id(op)] = (sources, tensors if len(tensors) > 1 else tensors[0])
    return out


def _inputs_of(model: Any, layer: Any, x: Any, nodes: dict, layers: list, values: list) -> Any:
    """What `layer` (a nested model) reads in `model` on `x`: outer layers' outputs, or `x` itself."""
    sources = nodes.get(id(layer), ([], None))[0]
    if not sources:
        return None
    xs = x if isinstance(x, list) else [x]
    names = [getattr(t, "name", None) for t in model.inputs]
    found = []
    for t in sources:
        history = getattr(t, "_keras_history", None)
        op = history.operation if history is not None and hasattr(history, "operation") else (
            history.layer if history is not None else None)  # fmt: skip
        if op is not None and op in layers:
            found.append(values[layers.index(op)])
        elif getattr(t, "name", None) in names:
            found.append(xs[names.index(t.name)])
        else:
            found.append(xs[min(len(found), len(xs) - 1)])
    return found if len(found) > 1 else found[0]


BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch", "numpy": "NumPy"}


def backend_of(native: Any) -> str:
    """The backend a Keras model computes on: tf_keras always TensorFlow, Keras 3 its configured one."""
    if type(native).__module__.startswith("tf_keras"):
        return "tensorflow"
    return str(require("keras").backend.backend())


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


def _ir_names(ir: Model | None, side: str, count: int, own: list[str] | None = None) -> list[str]:
    """Boundary names as the source file states them; the model's own (`own`: Keras's input names,
    a dict's output keys) when the file states none (a model built by a library's code)."""
    if ir is not None and ir.graph is not None:
        specs = getattr(ir.graph, side)
        if len(specs) == count:
            return [s.name for s in specs]
    if own is not None and len(own) == count and len(set(own)) == count:
        return list(own)
    return [f"{side[:-1]}_{i}" for i in range(count)]


#: how `convert`/`verify` compute the reference of a Keras source
REFERENCE_MODES = ("writer", "rebuild")


def keras_reference(
    ir: Model, rebuild: Callable[[], Any], mode: str | None = None, custom_objects: dict[str, Any] | None = None
) -> KerasRunner:
    """The reference runner of a Keras file: the writer's runtime loading the file itself when it
    holds no code (`keras.selfload`: Keras 3 for Keras 3 files, tf_keras for Keras 2 files), else
    tf_keras built from modeltool's checked config (Keras 1/2 files), else modeltool's Keras 3
    rebuild (`rebuild()` builds it); `mode` "writer" or "rebuild" insists on one. `runner.reference`
    says which and why."""
    from modeltool.keras import selfload
    from modeltool.keras.tfkeras import build_tf_keras, runtime_label, writer_unavailable

    if mode not in (None, *REFERENCE_MODES):
        raise UsageError(f"--reference {mode!r}: choose one of {', '.join(REFERENCE_MODES)}")
    refused = selfload.refusal(ir) if mode != "rebuild" else "--reference rebuild"
    if refused is None and loaded_by_keras(ir):
        # a subclassed or library model's "rebuild" is already Keras loading the file: one copy serves
        # the targets and the reference (a second load would double the memory of a large model)
        keras = require("keras", "running the reference")
        runner = KerasRunner(rebuild(), ir, runtime=f"Keras {keras.__version__}")
        runner.reference = _self_loaded(f"Keras {keras.__version__}", ir)
        return runner
    if refused is None:
        try:
            native, label = selfload.load(ir, custom_objects)
        except Exception as exc:  # noqa: BLE001 - the runtime refuses the file its own way: say so, rebuild
            refused = f"{label_of(ir)} refused the file ({' '.join(str(exc).split())[:160]})"
        else:
            runner = KerasRunner(native, ir, runtime=label)
            runner.reference = _self_loaded(label, ir)
            return runner
    why = writer_unavailable(ir, custom_objects) if mode != "rebuild" else "--reference rebuild"
    if why is None:
        label = runtime_label()
        runner = KerasRunner(build_tf_keras(ir), ir, runtime=label)
        runner.reference = (f"writer: {label}, the Keras 2 runtime, from modeltool's checked config and weights "
                            f"({refused})")  # fmt: skip
        return runner
    if mode == "writer" and not loaded_by_keras(ir):
        raise UsageError(f"{ir.path}: --reference writer is not possible: {refused}; {why}")
    keras = require("keras", "running the reference")

    runner = KerasRunner(rebuild(), ir, runtime=f"Keras {keras.__version__}")
    runner.reference = f"rebuild: modeltool's Keras {keras.__version__} rebuild ({refused})"
    if loaded_by_keras(ir):  # the rebuild of a subclassed or library model is Keras's own loader
        runner.reference = _self_loaded(f"Keras {keras.__version__}", ir)
    return runner


def _self_loaded(label: str, ir: Model) -> str:
    """The report line of a reference the writer's runtime `label` loaded from the file itself."""
    how = "keras.saving.load_model, safe_mode" if label.startswith("Keras") else "tf_keras.models.load_model"
    return f"writer: {label} loaded the file itself ({how}){_libraries(ir)}"


def label_of(ir: Model) -> str:
    from modeltool.keras.semantics import writer_generation

    return "Keras 3" if writer_generation(ir) >= 3 else "tf_keras"


def loaded_by_keras(ir: Model) -> bool:
    """True when the model is built by Keras's own loader from the file (a subclassed model or a
    model-library class: its layers are the library's code, which modeltool does not rebuild)."""
    from modeltool.keras.rebuild import is_subclassed

    return ir.graph is not None and is_subclassed(ir)


def _libraries(ir: Model) -> str:
    from importlib.metadata import PackageNotFoundError, version

    from modeltool.keras.trust import pip_name, required_libraries

    names = []
    for package in required_libraries(ir.config):
        try:
            names.append(f"{package} {version(pip_name(package))}")
        except PackageNotFoundError:
            names.append(package)
    return f", classes from {', '.join(names)}" if names else ""
