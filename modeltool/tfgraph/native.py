"""TF graph models made runnable and convertible: a frozen GraphDef with a named boundary.

Every TF graph source (a SavedModel signature, a frozen `.pb`, a TF1 checkpoint with its `.meta`)
becomes one `FrozenGraph`: a GraphDef with variables folded to constants, the tensors to feed and
fetch, and the names users know them by (signature keys, placeholder and node names). ONNX, TFLite,
SavedModel and `.pb` targets are all written from it. Unlike the rest of `tfgraph`, this module
needs TensorFlow (imported when a function here runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from modeltool.deps import require
from modeltool.errors import LoadError, UnsupportedError, UsageError
from modeltool.formats import Format
from modeltool.ir import Model, TensorSpec


@dataclass
class Endpoint:
    """A boundary tensor: its graph tensor name and the name users see."""

    tensor: str
    name: str
    shape: tuple | None = None
    dtype: str | None = None


@dataclass
class FrozenGraph:
    graph_def: Any  # tensorflow GraphDef
    inputs: list[Endpoint]
    outputs: list[Endpoint]
    source: str
    #: the SavedModel signature this came from (the TFLite converter reads the SavedModel itself)
    saved_model: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(e.name, e.shape, e.dtype) for e in self.inputs]


def tensor(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def from_ir(ir: Model, signature: str | None = None, fixed: dict[str, float] | None = None) -> FrozenGraph:
    """The frozen graph of a loaded TF graph source; `fixed` placeholders (name -> value) become
    constants (a dropout's `keep_prob` set to 1 for inference) and leave the inputs."""
    fmt = ir.format
    if fixed:
        if fmt == Format.SAVEDMODEL:
            raise UsageError(f"{ir.path}: --fix-input applies to frozen GraphDefs and TF1 checkpoints (a "
                             "SavedModel signature takes exactly its inputs)")  # fmt: skip
        return fix_placeholders(from_ir(ir, signature), fixed)
    if fmt == Format.SAVEDMODEL:
        return from_saved_model(ir.path, signature)
    if fmt == Format.GRAPHDEF:
        return from_graphdef(ir)
    if fmt == Format.CHECKPOINT and os.path.isfile(ir.path + ".meta"):
        return from_meta_checkpoint(ir)
    raise UnsupportedError(f"{ir.path}: {ir.metadata.format_description} holds no runnable graph")


def pick_signature(signatures: dict[str, Any], wanted: str | None, path: str) -> str:
    """`--signature`, else `serving_default`, else the only one; an error lists them otherwise."""
    names = sorted(k for k in signatures if k != "__saved_model_init_op")
    if wanted is not None:
        if wanted not in names:
            raise UsageError(f"{path}: no signature {wanted!r}; available: {', '.join(names) or 'none'}")
        return wanted
    if "serving_default" in names:
        return "serving_default"
    if len(names) == 1:
        return names[0]
    raise UsageError(
        f"{path}: no serving_default signature; choose one with --signature ({', '.join(names) or 'none'})"
    )


def load_saved_model(path: str) -> Any:
    tf = require("tensorflow", "running SavedModels")
    try:
        return tf.saved_model.load(path)
    except Exception as exc:  # noqa: BLE001 - TF raises many types for a bad directory
        raise LoadError(f"{path}: TensorFlow cannot load this SavedModel ({' '.join(str(exc).split())[:300]})") from exc


def from_saved_model(path: str, signature: str | None = None) -> FrozenGraph:
    loaded = load_saved_model(path)  # imports TensorFlow quietly first
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    name = pick_signature(dict(loaded.signatures), signature, path)
    fn = loaded.signatures[name]
    try:
        # functional While loops kept (not lowered to Switch/Merge): tf2onnx converts a While over
        # TensorLists into an ONNX Loop, but not the lowered form (TensorListReserve left behind)
        frozen = convert_variables_to_constants_v2(fn, lower_control_flow=False)
    except Exception as exc:  # noqa: BLE001
        raise UnsupportedError(
            f"{path}: signature {name!r} cannot be frozen ({' '.join(str(exc).split())[:300]})"
        ) from exc
    _, kwargs = fn.structured_input_signature
    placeholders = [t for t in frozen.inputs if t.dtype.name != "resource"]
    by_arg = {t.name.split(":")[0]: t for t in placeholders}
    inputs = []
    for i, (key, spec) in enumerate(sorted(kwargs.items())):
        t = by_arg.get(key)
        if t is None:
            t = next((p for p in placeholders if p.name.split(":")[0].endswith(key)), None)
        if t is None and len(placeholders) == len(kwargs):
            t = placeholders[i]  # flattened in sorted-key order, like the outputs
        if t is None:
            raise UnsupportedError(f"{path}: signature {name!r} input {key!r} not found in the frozen graph")
        shape = tuple(spec.shape.as_list()) if spec.shape.rank is not None else None
        inputs.append(Endpoint(t.name, key, shape, spec.dtype.name))
    keys = sorted(fn.structured_outputs)  # tf.nest flattens dicts in sorted-key order
    outputs = [Endpoint(t.name, k, None, t.dtype.name) for k, t in zip(keys, frozen.outputs)]
    return FrozenGraph(frozen.graph.as_graph_def(), inputs, outputs, path, saved_model=(path, name))


def tf_graph_def(path: str) -> Any:
    """The file as TensorFlow's own GraphDef (binary or text)."""
    tf = require("tensorflow", "converting GraphDefs")
    from google.protobuf import text_format

    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        if data.lstrip()[:4] in (b"node", b"vers", b"libr"):
            text_format.Parse(data.decode("utf-8"), graph_def)
        else:
            graph_def.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001
        raise LoadError(f"{path}: TensorFlow cannot parse this GraphDef ({' '.join(str(exc).split())[:200]})") from exc
    return graph_def


def _endpoints(specs: list[TensorSpec]) -> list[Endpoint]:
    return [Endpoint(tensor(s.name), s.name, s.shape, s.dtype) for s in specs]


def fix_placeholders(fg: FrozenGraph, fixed: dict[str, float]) -> FrozenGraph:
    """The graph with each named Placeholder replaced by a constant of its dtype (its shape when the
    Placeholder states a complete one, else a scalar)."""
    tf = require("tensorflow")
    import numpy as np

    graph_def = tf.compat.v1.GraphDef()
    graph_def.CopyFrom(fg.graph_def)
    nodes = {n.name: n for n in graph_def.node}
    for name, value in fixed.items():
        node = nodes.get(name.split(":")[0])
        if node is None or node.op not in ("Placeholder", "PlaceholderWithDefault"):
            raise UsageError(f"{fg.source}: --fix-input {name}: no Placeholder of that name in the graph")
        dtype = tf.as_dtype(node.attr["dtype"].type)
        dims = [d.size for d in node.attr["shape"].shape.dim] if "shape" in node.attr else []
        shape = dims if dims and all(d >= 0 for d in dims) and not node.attr["shape"].shape.unknown_rank else []
        array = np.full(shape, value, dtype=dtype.as_numpy_dtype)
        node.op = "Const"
        node.ClearField("input")
        for key in list(node.attr):
            del node.attr[key]
        node.attr["dtype"].type = dtype.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(array))
    gone = {n.split(":")[0] for n in fixed}
    inputs = [e for e in fg.inputs if e.tensor.split(":")[0] not in gone]
    notes = [*fg.notes, "fixed: " + ", ".join(f"{k}={v:g}" for k, v in fixed.items())]
    return FrozenGraph(graph_def, inputs, fg.outputs, fg.source, fg.saved_model, notes)


def from_graphdef(ir: Model) -> FrozenGraph:
    if ir.graph is None or not ir.graph.outputs:
        raise UsageError(f"{ir.path}: no outputs detected; name them with --outputs")
    return FrozenGraph(tf_graph_def(ir.path), _endpoints(ir.graph.inputs), _endpoints(ir.graph.outputs), ir.path)


def from_meta_checkpoint(ir: Model) -> FrozenGraph:
    """A TF1 checkpoint: import its `.meta`, restore the variables, fold them into constants."""
    tf = require("tensorflow", "converting TF1 checkpoints")
    if ir.graph is None or not ir.graph.outputs:
        raise UsageError(f"{ir.path}: no outputs detected; name them with --outputs")
    outputs = _endpoints(ir.graph.outputs)
    graph = tf.Graph()
    with graph.as_default():
        try:
            saver = tf.compat.v1.train.import_meta_graph(_meta_graph(tf, ir.path + ".meta"), clear_devices=True)
        except Exception as exc:  # noqa: BLE001
            raise LoadError(f"{ir.path}.meta: TensorFlow cannot import this meta graph ({_line(exc)})") from exc
        with tf.compat.v1.Session(graph=graph) as sess:
            try:
                saver.restore(sess, ir.path)
            except Exception as exc:  # noqa: BLE001
                raise LoadError(f"{ir.path}: restoring the checkpoint failed ({_line(exc)})") from exc
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [o.tensor.split(":")[0] for o in outputs]
            )
    return FrozenGraph(frozen, _endpoints(ir.graph.inputs), outputs, ir.path)


def _meta_graph(tf: Any, path: str) -> Any:
    """The MetaGraphDef of a `.meta` file, its `tensorflow_version` made readable: TF 0.12 wrote
    "0.12.head" and similar strings that TensorFlow's own version check now rejects ("Invalid
    version"), although the graph itself imports fine. The stamp is the only thing changed."""
    import re

    meta = tf.compat.v1.MetaGraphDef()
    try:
        with open(path, "rb") as f:
            meta.ParseFromString(f.read())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and OSError alike
        raise LoadError(f"{path}: not a readable MetaGraphDef ({_line(exc)})") from exc
    version = meta.meta_info_def.tensorflow_version
    if version and not re.fullmatch(r"\d+(\.\d+)*([abc]|rc|\.dev|\.post)?\d*", version):
        numbers = re.match(r"\d+(\.\d+)*", version)
        meta.meta_info_def.tensorflow_version = numbers.group(0) if numbers else ""
    return meta


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def session_callable(fg: FrozenGraph) -> tuple[Any, Any]:
    """(session, fetch function feed->outputs) over an imported copy of the graph."""
    tf = require("tensorflow")
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.compat.v1.import_graph_def(fg.graph_def, name="")
        except Exception as exc:  # noqa: BLE001
            raise LoadError(f"{fg.source}: TensorFlow cannot import this graph ({_line(exc)})") from exc
    sess = tf.compat.v1.Session(graph=graph)
    return sess, graph


def wrapped_function(fg: FrozenGraph) -> Any:
    """A TF2 concrete function over the frozen graph: positional inputs, list of outputs."""
    tf = require("tensorflow")

    def imports() -> None:
        tf.compat.v1.import_graph_def(fg.graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(imports, [])
    return wrapped.prune([wrapped.graph.get_tensor_by_name(e.tensor) for e in fg.inputs],
                         [wrapped.graph.get_tensor_by_name(e.tensor) for e in fg.outputs])  # fmt: skip


def named_graph_def(fg: FrozenGraph) -> Any:
    """The graph with an Identity per output named as users know it (`.pb` targets), so a reader
    of the file finds the outputs by name."""
    tf = require("tensorflow")
    graph_def = tf.compat.v1.GraphDef()
    graph_def.CopyFrom(fg.graph_def)
    taken = {n.name for n in graph_def.node}
    for e in fg.outputs:
        if e.tensor in (f"{e.name}:0",) or e.name in taken:
            continue
        node = graph_def.node.add(name=e.name, op="Identity", input=[e.tensor.removesuffix(":0")])
        node.attr["T"].type = _dtype_enum(tf, e.dtype or "float32")
        taken.add(e.name)
    return graph_def


def _dtype_enum(tf: Any, dtype: str) -> int:
    return tf.as_dtype(dtype).as_datatype_enum
