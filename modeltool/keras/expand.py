"""A model-library backbone (KerasHub's `BertBackbone`, `GPT2Backbone`, ...) as the functional graph
of building blocks its class builds, with its weights: what the direct ONNX route writes.

The file holds only the backbone's constructor arguments (`vocabulary_size`, `num_layers`, ...): the
graph exists once the installed library's class has built it. KerasHub backbones are functional
models underneath (`keras.Model(inputs, outputs)` called in `__init__`), so once the library has built
the backbone (`library_shell`: no weight values) its operations and the calls between them are there
to read. The layers are serialized as Keras serializes a functional model's layers; a layer whose
own `get_config()` fails (some KerasHub blocks do) keeps its public attributes, and the direct route
names it if it has no converter. Each weight is read from the file at the path Keras's saving walk
gives its variable (`stored_paths`), else taken from a backbone Keras loaded; its role is its path
inside the block (`self_attention_layer/query/kernel`). Reads Keras internals (`saving_lib._save_state`,
`functional.serialize_node`): pinned to what Keras 3.15 does, checked by tests/hub.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.ir import Model, TensorSpec, Weight
from modeltool.keras.calls import keras_output_names
from modeltool.keras.graph import build_graph


def is_library_model(ir: Model) -> bool:
    """True for a file whose one layer is a trusted model library's class (the loader's flag)."""
    nodes = ir.graph.nodes if ir.graph is not None else []
    return len(nodes) == 1 and "library" in nodes[0].flags


def library_shell(ir: Model, objects: dict[str, Any]) -> Any:
    """The backbone as the library's class builds it from the file's config, without weights: its
    variables are created in Keras's stateless scope without values (on every backend), and never
    get any (nothing of the shell is computed; the weights are read from the file)."""
    from modeltool.deps import require

    keras = require("keras", "expanding a model-library backbone")
    from keras.src.backend.common import global_state

    before = {id(v) for v in global_state.get_global_attribute("uninitialized_variables") or []}
    try:
        with keras.StatelessScope(initialize_variables=False):
            return keras.saving.deserialize_keras_object(ir.config, custom_objects=objects, safe_mode=True)
    finally:  # the shell's variables stay without values: off Keras's list of ones to initialize
        pending = global_state.get_global_attribute("uninitialized_variables") or []
        global_state.set_global_attribute("uninitialized_variables", [v for v in pending if id(v) in before])


def expanded(ir: Model, native: Any, opener: Any = None) -> Model | None:
    """`ir` with the graph and weights of `native` (the backbone Keras built from the file), or
    None when `native` is not a functional model underneath (a library class that is subclassed).
    With `opener` (the file's weights store, h5py), `native` may be built without weights: each
    weight is read from the file when a converter asks for it, at the path Keras stored it under
    (`stored_paths`), so the conversion holds the weights once, not also as Keras's variables."""
    cfg = functional_config(native)
    if cfg is None:
        return None
    model_cfg = {"module": "keras", "class_name": "Functional", "config": cfg}
    graph = build_graph(model_cfg)
    graph.name = ir.graph.nodes[0].name if ir.graph is not None and ir.graph.nodes else native.name
    # named as on the TensorFlow route (`sources.keras.boundary_names`): a dict's keys, else output_<i>
    names = keras_output_names(native) or [f"output_{i}" for i in range(len(graph.outputs))]
    if len(names) == len(graph.outputs):
        graph.outputs = [TensorSpec(n, s.shape, s.dtype) for n, s in zip(names, graph.outputs)]
    weights = _weights(native, stored_paths(native) if opener is not None else None, opener)
    if weights is None:
        return None
    return Model(ir.path, ir.metadata, graph, weights, ir.signatures, list(ir.warnings), model_cfg)


def stored_paths(native: Any) -> dict[int, str]:
    """{id(variable): its dataset in a Keras 3 weights file}, found by Keras's own saving walk
    (`saving_lib._save_state`) run against a store that records where each variable would go and
    writes nothing, so the paths are Keras's whatever its naming rules (`layers/transformer_encoder/
    _self_attention_layer/query_dense/vars/0`)."""
    from keras.src.saving import saving_lib

    class Recorder(saving_lib.H5IOStore):
        def __init__(self) -> None:  # no file: nothing is written
            self.paths: dict[int, str] = {}
            self.at = ""

        def __bool__(self) -> bool:
            return True

        def make(self, path: str, metadata: Any = None) -> Any:
            self.at = path
            return self

        def __setitem__(self, key: str, value: Any) -> None:
            self.paths[id(value)] = f"{self.at}/vars/{key}" if self.at else f"vars/{key}"

    recorder = Recorder()
    saving_lib._save_state(native, recorder, None, "", set())  # noqa: SLF001 - Keras's walk, read only
    return recorder.paths


def functional_config(native: Any) -> dict[str, Any] | None:
    """The functional config of `native` as `Functional.get_config` writes it for a plain functional
    model (the backbone's own `get_config` returns its constructor arguments instead), inputs and
    outputs flattened in Keras's order (a dict's keys sorted, as `native.inputs` lists them)."""
    from keras.src.models.functional import Functional, serialize_node
    from keras.src.ops.function import make_node_key

    if not isinstance(native, Functional):
        return None
    reindex: dict[str, int] = {}
    for op in native.operations:
        kept = 1 if isinstance(op, Functional) else 0
        for index, _ in enumerate(op._inbound_nodes):
            key = make_node_key(op, index)
            if key in native._nodes:
                reindex[key] = kept
                kept += 1
    layers = []
    for op in native.operations:
        entry = _serialized(op)
        entry["name"] = op.name
        entry["inbound_nodes"] = [
            data
            for index, node in enumerate(op._inbound_nodes)
            if make_node_key(op, index) in native._nodes
            and (data := serialize_node(node, own_nodes=native._nodes)) is not None
        ]
        layers.append(entry)

    def key_of(tensor: Any) -> list[Any]:
        op, node_index, tensor_index = tensor._keras_history
        return [op.name, reindex[make_node_key(op, node_index)], tensor_index]

    import keras

    return {
        "name": native.name,
        "trainable": native.trainable,
        "layers": layers,
        "input_layers": [key_of(t) for t in keras.tree.flatten(native._inputs_struct)],
        "output_layers": [key_of(t) for t in keras.tree.flatten(native._outputs_struct)],
    }


def _serialized(op: Any) -> dict[str, Any]:
    """Keras's serialization of one operation; its class and name alone when its `get_config`
    fails (a layer built from arguments it cannot serialize)."""
    import keras

    try:
        return dict(keras.saving.serialize_keras_object(op))
    except Exception:  # noqa: BLE001 - a library layer's get_config raises what it likes
        cls = type(op)
        return {"module": cls.__module__, "class_name": cls.__name__,
                "registered_name": keras.saving.get_registered_name(cls), "config": _attributes(keras, op)}  # fmt: skip


def _attributes(keras: Any, op: Any) -> dict[str, Any]:
    """A layer's public attributes of plain types (what its constructor stored: `num_query_heads`,
    `layer_norm_epsilon`, ...) and its activation by name: its config, where `get_config` fails."""
    out: dict[str, Any] = {"name": op.name}
    for key, value in vars(op).items():
        if key.startswith("_") or key in out:
            continue
        if isinstance(value, (bool, int, float, str, type(None))):
            out[key] = value
        elif key == "activation" and callable(value):
            out[key] = keras.activations.serialize(value)
    return out


def _weights(native: Any, paths: dict[int, str] | None = None, opener: Any = None) -> list[Weight] | None:
    """Every variable of every top-level operation, named by its Keras path; the role is the path
    inside the operation (`kernel`, `self_attention_layer/query/kernel`). Read from the file at
    `paths` where given (None when a variable has no stored dataset there), else from Keras."""
    import keras

    from modeltool.keras.weights import h5_reader

    stored: set[str] = set()
    if paths is not None:
        with opener() as f:
            f.visititems(lambda name, obj: stored.add(name) if hasattr(obj, "shape") else None)
    out: list[Weight] = []
    seen: set[int] = set()
    for op in native.operations:
        for var in getattr(op, "weights", []):
            if id(var) in seen:
                continue
            seen.add(id(var))
            path = str(var.path)
            role = path[len(op.name) + 1 :] if path.startswith(op.name + "/") else path.rsplit("/", 1)[-1]
            if paths is not None:
                where = paths.get(id(var))
                if where not in stored:
                    return None  # a layer that saves its variables its own way: Keras loads it instead
                reader = h5_reader(opener, where)
            else:
                reader = _reader(keras, var)
            out.append(Weight(path, op.name, role, tuple(int(d) for d in var.shape), str(var.dtype),
                              var.trainable, reader))  # fmt: skip
    return out


def _reader(keras: Any, var: Any) -> Any:
    def read() -> Any:
        yield np.asarray(keras.ops.convert_to_numpy(var.value)).reshape(-1)

    return read
