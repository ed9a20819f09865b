"""What Keras itself computes for an architecture whose custom layers modeltool cannot size from
their configs: output shapes and parameter counts, read off a Keras 3 model built (without weights)
with the user's `--custom-objects` module. `inspect` stays TensorFlow-free without that module;
with it, it shows the figures `model.summary()` would. Imports Keras (and TensorFlow)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from modeltool.ir import Graph, Model, Node, TensorSpec


def fill_from_keras(model: Model, custom_objects: dict[str, Any], *, unsafe: bool = False) -> int:
    """Unknown output shapes and parameter counts of `model`'s layers (nested ones included) filled
    from Keras; returns how many layers got figures they lacked."""
    from modeltool.keras.rebuild import build

    if model.config is None or model.graph is None or model.graph.level != "layer":
        return 0
    native = build(model, custom_objects=custom_objects, unsafe=unsafe, with_weights=False)
    layers = dict(_walk(native))
    filled = 0
    for path, node in model.graph.walk():
        layer = layers.get(path)
        if layer is None:
            continue
        changed = False
        shapes = _output_shapes(layer)
        if shapes and (not node.output_shapes or any(_unknown(s) for s in node.output_shapes)):
            node.output_shapes, changed = shapes, True
        if node.params is None and layer.built:
            node.params = int(layer.count_params())
            node.trainable_params = int(sum(int(_size(w.shape)) for w in layer.trainable_weights))
            changed = True
        filled += changed
    outs = getattr(native, "outputs", None) or []
    if len(outs) == len(model.graph.outputs):
        model.graph.outputs = [TensorSpec(s.name, tuple(t.shape), s.dtype) for s, t in zip(model.graph.outputs, outs)]
    return filled


def _walk(native: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for layer in getattr(native, "layers", []):
        path = f"{prefix}{layer.name}"
        yield path, layer
        if layer.__class__.__name__ in ("Functional", "Sequential", "Model") and hasattr(layer, "layers"):
            yield from _walk(layer, path + "/")


def _output_shapes(layer: Any) -> list[tuple] | None:
    try:
        out = layer.output
    except (AttributeError, ValueError, RuntimeError):  # shared layers: several outputs; first call's
        nodes = getattr(layer, "_inbound_nodes", None) or []
        if not nodes:
            return None
        out = nodes[0].output_tensors
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [tuple(t.shape) for t in outs]


def _unknown(shape: Any) -> bool:
    return shape is None


def _size(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


# ---------------------------------------------------------------- model-library classes


def show_library_inside(model: Model, trust: tuple[str, ...] = (), custom_objects: str | None = None) -> bool:
    """`inspect`'s view of a model built from a trusted library's classes: its inside when the
    library is installed (importing it, and the Keras it runs on), else a line saying which package
    would show it. The file's own figures (config, weights, counts) stand either way."""
    from modeltool.keras.rebuild import load_custom_objects
    from modeltool.keras.trust import installed, missing_library_message, required_libraries, trusted_objects

    if model.config is None:
        return False
    needed = required_libraries(model.config, trust)
    if not needed:
        return False
    for package, refs in needed.items():
        if not installed(package):
            model.warnings.append(missing_library_message(model.path, package, refs, "showing the layers inside")
                                  .split(": ", 1)[1])  # fmt: skip
            return False
    objects = {**trusted_objects(model.path, model.config, trust, "showing the layers inside"),
               **load_custom_objects(custom_objects)}  # fmt: skip
    filled = fill_library_model(model, objects)
    if filled:
        node = model.graph.nodes[0]  # type: ignore[union-attr]
        model.warnings[:] = [w for w in model.warnings if not w.startswith(f"{node.op} is a ")]
        built_by = ", ".join(needed)
        model.warnings.append(f"{node.op}: layers built by {built_by} from the file's config (weights not read)")
    return filled


def fill_library_model(model: Model, objects: dict[str, Any]) -> bool:
    """The inside of a model whose one layer is a class of a trusted model library (a KerasHub
    backbone): built by Keras from the file's config with the library's classes (no weights read),
    every layer and sub-layer becomes a node with Keras's own output shapes and parameter counts,
    and the boundary gets the model's named inputs and outputs. True when filled."""
    from modeltool.deps import require
    from modeltool.keras.hub import input_meanings
    from modeltool.keras.rebuild import deferred_initialization, initialize_pending, is_subclassed

    if model.graph is None or model.config is None or not is_subclassed(model):
        return False
    keras = require("keras", "showing the inside of a model-library model")
    try:
        with deferred_initialization(keras):
            native = keras.saving.deserialize_keras_object(model.config, custom_objects=objects, safe_mode=True)
    finally:
        initialize_pending(keras)
    shapes = _traced_shapes(keras, native, model)
    top = model.graph.nodes[0]
    top.subgraph = Graph(_layer_nodes(native, shapes, keras), [], [], "layer", top.name)
    top.params = int(native.count_params())
    top.trainable_params = int(sum(_size(w.shape) for w in native.trainable_weights))
    meanings = input_meanings(model)
    ins = [TensorSpec(t.name.split(":")[0], tuple(t.shape), str(getattr(t.dtype, "name", t.dtype)))
           for t in getattr(native, "inputs", None) or []]  # fmt: skip
    model.graph.inputs = ins
    described = {s.name: meanings[s.name].describe() for s in ins if s.name in meanings}
    if described:
        model.metadata.extra["input_meanings"] = described
    outs = getattr(native, "outputs", None) or []
    struct = getattr(native, "_outputs_struct", None)
    names = sorted(struct) if isinstance(struct, dict) else [f"output_{i}" for i in range(len(outs))]
    model.graph.outputs = [TensorSpec(n, tuple(t.shape), str(getattr(t.dtype, "name", t.dtype)))
                           for n, t in zip(names, outs)]  # fmt: skip
    top.output_shapes = [s.shape for s in model.graph.outputs]
    top.inbound = [[s.name for s in ins]]
    return True


def _traced_shapes(keras: Any, native: Any, model: Model) -> dict[int, list[tuple]]:
    """{id(layer): output shapes of its first call} for every layer and sub-layer, recorded while
    the model runs on two small inputs of different batch and sequence sizes: sub-layers are only
    ever called inside their parent's `call`, and a dim that differs between the runs is dynamic
    (None), one that stays is the model's own."""
    from modeltool.keras.calls import pack_inputs
    from modeltool.keras.hub import input_meanings

    meanings = input_meanings(model)
    runs: list[dict[int, list[tuple]]] = []
    original = keras.layers.Layer.__call__
    for batch, length in ((2, 5), (3, 7)):
        shapes: dict[int, list[tuple]] = {}

        def recording(self: Any, *args: Any, _shapes: dict = shapes, **kwargs: Any) -> Any:
            out = original(self, *args, **kwargs)
            if id(self) not in _shapes:
                _shapes[id(self)] = [tuple(int(d) for d in t.shape) for t in keras.tree.flatten(out)
                                     if hasattr(t, "shape") and None not in tuple(t.shape)]  # fmt: skip
            return out

        rng = np.random.default_rng(0)
        args = [_probe_input(t, batch, length, meanings, rng) for t in native.inputs]
        keras.layers.Layer.__call__ = recording
        try:
            native(pack_inputs(native, args), training=False)
        except Exception:  # noqa: BLE001 - shapes are a bonus: the layers and counts stand without them
            return {}
        finally:
            keras.layers.Layer.__call__ = original
        runs.append(shapes)
    first, second = runs
    merged = {}
    for key, a in first.items():
        b = second.get(key)
        if b is not None and len(a) == len(b) and all(len(x) == len(y) for x, y in zip(a, b)):
            merged[key] = [tuple(d if d == e else None for d, e in zip(x, y)) for x, y in zip(a, b)]
    return merged


def _probe_input(tensor: Any, batch: int, length: int, meanings: dict, rng: Any) -> Any:
    """A small valid input (`hub.valid_value`: ids inside their range, a padding mask), else zeros
    for integers and noise for floats."""
    from modeltool.keras.hub import valid_value

    shape = tuple(batch if i == 0 else (length if d is None else int(d)) for i, d in enumerate(tensor.shape))
    dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
    meaning = meanings.get(tensor.name.split(":")[0])
    valid = valid_value(meaning, shape, dtype, rng) if meaning is not None else None
    if valid is not None:
        return valid
    if np.dtype(dtype).kind in "iub":
        return np.zeros(shape, dtype)
    return rng.standard_normal(shape).astype(dtype)


def _layer_nodes(layer: Any, shapes: dict[int, list[tuple]], keras: Any) -> list[Node]:
    """One node per layer of a functional model (connected as Keras connects them) or per tracked
    sub-layer of any other layer, each with its own sub-layers nested."""
    nodes = []
    for child in _children(layer):
        if type(child).__name__ == "InputLayer":
            continue
        inner = _layer_nodes(child, shapes, keras)
        node = Node(child.name, type(child).__name__, {}, _inbound(child, layer),
                    shapes.get(id(child)) or _functional_shapes(child),
                    params=int(child.count_params()) if child.built else None,
                    trainable_params=int(sum(_size(w.shape) for w in child.trainable_weights)) if child.built else None,
                    subgraph=Graph(inner, [], [], "layer", child.name) if inner else None)  # fmt: skip
        nodes.append(node)
    return nodes


def _children(layer: Any) -> list[Any]:
    if hasattr(layer, "_functional") or type(layer).__name__ in ("Functional", "Sequential") or (
        getattr(layer, "_inputs_struct", None) is not None and hasattr(layer, "layers")
    ):
        return list(layer.layers)
    return list(getattr(layer, "_layers", None) or [])


def _inbound(child: Any, parent: Any) -> list[list[str]]:
    """The layers feeding `child` in `parent`'s functional graph (its first call), by name."""
    if not hasattr(parent, "layers") or getattr(parent, "_inputs_struct", None) is None:
        return []
    nodes = getattr(child, "_inbound_nodes", None) or []
    if not nodes:
        return []
    names = []
    for t in getattr(nodes[0], "input_tensors", None) or []:
        history = getattr(t, "_keras_history", None)
        if history is not None:
            names.append(history.operation.name if history.tensor_index == 0
                         else f"{history.operation.name}:{history.tensor_index}")  # fmt: skip
    return [names] if names else []


def _functional_shapes(layer: Any) -> list[tuple]:
    return _output_shapes(layer) or [None]
