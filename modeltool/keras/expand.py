"""A model-library backbone (KerasHub's `BertBackbone`, `GPT2Backbone`, ...) as the functional graph
of building blocks its class builds, with the weights Keras loaded: what the direct ONNX route writes.

The file holds only the backbone's constructor arguments (`vocabulary_size`, `num_layers`, ...): the
graph exists once the installed library's class has built it. KerasHub backbones are functional
models underneath (`keras.Model(inputs, outputs)` called in `__init__`), so after Keras has loaded
the file (the trusted library's classes, `keras/trust.py`) their operations, the calls between them
and every variable are there to read. The layers are serialized as Keras serializes a functional
model's layers; a layer whose own `get_config()` fails (some KerasHub blocks do) keeps its class and
name, and the direct route then names it as a layer it has no converter for. Weights keep Keras's
variable paths: a block's weight role is its path inside the block (`self_attention_layer/query/kernel`).
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


def expanded(ir: Model, native: Any) -> Model | None:
    """`ir` with the graph and weights of `native` (the backbone Keras built from the file), or
    None when `native` is not a functional model underneath (a library class that is subclassed)."""
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
    return Model(ir.path, ir.metadata, graph, _weights(native), ir.signatures, list(ir.warnings), model_cfg)


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


def _weights(native: Any) -> list[Weight]:
    """Every variable of every top-level operation, named by its Keras path; the role is the path
    inside the operation (`kernel`, `self_attention_layer/query/kernel`)."""
    import keras

    out: list[Weight] = []
    seen: set[int] = set()
    for op in native.operations:
        for var in getattr(op, "weights", []):
            if id(var) in seen:
                continue
            seen.add(id(var))
            path = str(var.path)
            role = path[len(op.name) + 1 :] if path.startswith(op.name + "/") else path.rsplit("/", 1)[-1]
            out.append(Weight(path, op.name, role, tuple(int(d) for d in var.shape), str(var.dtype),
                              var.trainable, _reader(keras, var)))  # fmt: skip
    return out


def _reader(keras: Any, var: Any) -> Any:
    def read() -> Any:
        yield np.asarray(keras.ops.convert_to_numpy(var.value)).reshape(-1)

    return read
