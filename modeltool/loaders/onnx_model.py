"""ONNX models: op-level graph, opsets, initializers as weights. No onnx, onnxruntime or TensorFlow import.

The file is parsed with the messages of `onnx_proto` (plain protobuf), not with `onnx.load`: importing
`onnx` costs more than a second, five times the rest of `modeltool inspect`. Shapes are those the
file states (graph inputs, outputs and `value_info`); ONNX's shape inference, which fills in the
shapes of intermediate tensors, runs only when asked for (`infer_shapes=True`), because it needs the
real `onnx` package. Weight values of the numpy-native types are decoded here; the ml_dtypes types
(bfloat16, float8, int4, ...) are handed to onnx's own decoder when their values are read.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modeltool.errors import LoadError
from modeltool.formats import Format, describe
from modeltool.ir import ChunkReader, Graph, Metadata, Model, Node, TensorSpec, Weight
from modeltool.loaders import onnx_proto

#: above this many bytes, ONNX shape inference is skipped (it copies the whole model)
SHAPE_INFERENCE_LIMIT = 256 * 1024 * 1024

#: AttributeProto.AttributeType -> the field that holds a single value / a list of values
_ATTR_FIELDS = {1: "f", 2: "i", 3: "s", 4: "t", 5: "g", 11: "sparse_tensor", 13: "tp"}
_ATTR_LISTS = {6: "floats", 7: "ints", 8: "strings", 9: "tensors", 10: "graphs", 12: "sparse_tensors",
               14: "type_protos"}  # fmt: skip

#: TensorProto.DataType -> (numpy dtype, the typed field that holds values without raw_data, its numpy type);
#: the types numpy has itself (the others need ml_dtypes, see `_decoded_by_onnx`)
_NATIVE = {
    1: ("float32", "float_data", "float32"), 2: ("uint8", "int32_data", "int32"),
    3: ("int8", "int32_data", "int32"), 4: ("uint16", "int32_data", "int32"), 5: ("int16", "int32_data", "int32"),
    6: ("int32", "int32_data", "int32"), 7: ("int64", "int64_data", "int64"), 9: ("bool", "int32_data", "int32"),
    10: ("float16", "int32_data", "int32"), 11: ("float64", "double_data", "float64"),
    12: ("uint32", "uint64_data", "uint64"), 13: ("uint64", "uint64_data", "uint64"),
    14: ("complex64", "float_data", "float32"), 15: ("complex128", "double_data", "float64"),
}  # fmt: skip
#: types whose values sit in int32_data as bit patterns (16 bits, or 8 for bool), not as numbers
_BITS16, _BITS8 = (4, 5, 10), (9,)


def load(path: str, infer_shapes: bool = False, lazy_above: int = onnx_proto.LAZY_RAW_DATA_BYTES,
         **options: Any) -> Model:  # fmt: skip
    """Read an ONNX file into the IR without importing onnx.

    `infer_shapes=True` adds the output shapes of intermediate ops that the file does not state, with
    ONNX's shape inference (imports `onnx`, about a second; skipped above SHAPE_INFERENCE_LIMIT bytes).
    Above `lazy_above` bytes the initializers' values stay in the file until read.
    """
    from google.protobuf.message import DecodeError

    try:
        proto, raw_spans, size = onnx_proto.read_model(path, lazy_above)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise LoadError(f"{path}: not a valid ONNX protobuf ({str(exc).splitlines()[0][:160]})") from exc
    if not proto.HasField("graph") or not proto.graph.node and not proto.graph.output:
        raise LoadError(f"{path}: ONNX file holds no graph")
    g = proto.graph
    graph_inputs, graph_outputs, value_info = list(g.input), list(g.output), list(g.value_info)
    if infer_shapes and size < SHAPE_INFERENCE_LIMIT:
        inferred = _inferred_value_infos(path)
        if inferred is not None:
            graph_inputs, graph_outputs, value_info = inferred
    with _gc_paused():
        return _model(path, proto, raw_spans, size, (graph_inputs, graph_outputs, value_info))


def _model(path: str, proto: Any, raw_spans: list, size: int, infos: tuple[list, list, list]) -> Model:
    """The IR of a parsed ModelProto; `infos` are the graph inputs, outputs and value_info to take shapes from."""
    g = proto.graph
    graph_inputs, graph_outputs, value_info = infos
    file = os.path.abspath(path)
    init_names = {_t(t.name) for t in g.initializer}
    shapes = {_t(vi.name): _dims(vi.type) for vi in [*value_info, *graph_outputs, *graph_inputs]}

    weights = []
    for i, t in enumerate(g.initializer):
        weights.append(
            Weight(
                _t(t.name),
                None,
                "initializer",
                tuple(int(d) for d in t.dims),
                onnx_proto.dtype_name(t.data_type),
                True,
                _reader(t, raw_spans[i] if raw_spans else None, file, path),
            )  # fmt: skip
        )
    owner: dict[str, str] = {}
    nodes = []
    sizes = {w.name: w.size for w in weights}
    for i, n in enumerate(g.node):
        name = _t(n.name) or f"{_t(n.op_type)}_{i}"
        n_in, n_out = [_t(x) for x in n.input], [_t(x) for x in n.output]
        own = [x for x in n_in if x in init_names and x not in owner]
        for x in own:
            owner[x] = name
        params = sum(sizes[x] for x in own)
        attrs = {_t(a.name): _attr_value(a) for a in n.attribute}
        node = Node(name, _t(n.op_type), attrs, [[x for x in n_in if x and x not in init_names]],
                    [shapes.get(o) for o in n_out], params=params, trainable_params=params)  # fmt: skip
        node.attrs.update({"outputs": n_out, "domain": _t(n.domain) or "ai.onnx"})
        nodes.append(node)
    for w in weights:
        w.layer = owner.get(w.name)

    inputs = [_spec(vi) for vi in graph_inputs if _t(vi.name) not in init_names]
    outputs = [_spec(vi) for vi in graph_outputs]
    opsets = {(_t(o.domain) or "ai.onnx"): o.version for o in proto.opset_import}
    writer = {"producer": f"{_t(proto.producer_name)} {_t(proto.producer_version)}".strip(),
              "ir_version": str(proto.ir_version), "opset": str(opsets.get("ai.onnx", ""))}  # fmt: skip
    extra = {"opsets": opsets, "graph_name": _t(g.name),
             "metadata_props": {_t(p.key): _t(p.value) for p in proto.metadata_props}}  # fmt: skip
    meta = Metadata(Format.ONNX, describe(Format.ONNX), size, writer, None, extra)
    return Model(path, meta, Graph(nodes, inputs, outputs, "op", _t(g.name)), weights)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A graph of tens of thousands of ops makes as many small objects, none in a reference cycle:
    the cyclic collector, run again and again meanwhile, would double the time spent building them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _inferred_value_infos(path: str) -> tuple[list, list, list] | None:
    """Graph inputs, outputs and value_info after ONNX's shape inference, as onnx_proto messages;
    None when inference fails (it is a bonus: the graph as written is still valid)."""
    from modeltool.deps import require

    onnx = require("onnx", "ONNX shape inference")
    try:
        with open(path, "rb") as fh:
            g = onnx.shape_inference.infer_shapes(fh.read()).graph
    except Exception:  # noqa: BLE001 - shape inference is a bonus; the raw graph is still valid
        return None
    value_info_class = onnx_proto.message_class("ValueInfoProto")

    def ours(infos: Any) -> list:
        return [value_info_class.FromString(vi.SerializeToString()) for vi in infos]

    return ours(g.input), ours(g.output), ours(g.value_info)


def _dims(type_proto: Any) -> tuple | None:
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)


def _spec(vi: Any) -> TensorSpec:
    elem = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
    return TensorSpec(_t(vi.name), _dims(vi.type), onnx_proto.dtype_name(elem) if elem else None)


def _t(value: Any) -> str:
    """A protobuf string field; proto2 hands back bytes when a (corrupted) file holds invalid UTF-8."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _attr_value(attr: Any) -> Any:
    """An attribute's value as `onnx.helper.get_attribute_value` gives it, strings decoded, tensors
    and subgraphs summarized."""
    if attr.ref_attr_name:  # only meaningful inside a function body: a graph node holding one is corrupt
        raise ValueError(f"Cannot get value of reference attribute: {attr}")
    if attr.type in _ATTR_FIELDS:
        value = getattr(attr, _ATTR_FIELDS[attr.type])
    elif attr.type in _ATTR_LISTS:
        value = list(getattr(attr, _ATTR_LISTS[attr.type]))
    else:  # UNDEFINED (the enum is closed: an unknown type number reads as UNDEFINED)
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value][:64]
    if hasattr(value, "dims"):  # a TensorProto attribute
        return {"tensor": list(value.dims)}
    if hasattr(value, "node"):  # a subgraph (If/Loop bodies)
        return {"graph": value.name, "nodes": len(value.node)}
    return value


def _reader(tensor: Any, raw_span: tuple[int, int] | None, file: str, path: str) -> ChunkReader:
    """Reads the tensor's values when asked; raw bytes left in the model file are read from `file` then."""

    def read():  # noqa: ANN202 - a ChunkReader
        raw = _file_bytes(file, *raw_span, f"{path}: weight {_t(tensor.name)!r}") if raw_span else None
        base_dir = os.path.dirname(file)
        yield tensor_values(tensor, base_dir, path, raw)

    return read


def tensor_values(tensor: Any, base_dir: str, path: str = "", raw: bytes | None = None) -> Any:
    """The values of an onnx_proto TensorProto as `onnx.numpy_helper.to_array` gives them. `raw` is
    its raw_data when that was left in the file (`onnx_proto.read_model`); external data is read from
    `base_dir`, never from outside it."""
    import numpy as np

    if tensor.HasField("segment"):
        raise ValueError("Currently not supporting loading segments.")
    dt = tensor.data_type
    if dt == onnx_proto.UNDEFINED:
        raise TypeError("The element type in the input tensor is UNDEFINED.")
    if dt not in onnx_proto.DTYPES:
        raise LoadError(f"{path}: tensor {_t(tensor.name)!r} has ONNX data type {dt}, unknown to modeltool")
    dims = tuple(tensor.dims)
    if dt == onnx_proto.STRING:
        return np.asarray([s.decode("utf-8") for s in tensor.string_data]).astype(object).reshape(dims)
    if tensor.data_location == onnx_proto.EXTERNAL:
        raw = _external_bytes(tensor, base_dir, path)
    elif raw is None and tensor.HasField("raw_data"):
        raw = tensor.raw_data
    if dt not in _NATIVE:
        return _decoded_by_onnx(tensor, raw)
    name, field, storage = _NATIVE[dt]
    if raw is not None:
        return np.frombuffer(raw, dtype=np.dtype(name).newbyteorder("<")).reshape(dims)
    values = getattr(tensor, field)
    if dt in _BITS16 or dt in _BITS8:
        bits = np.array(values, dtype=np.int32).view(np.uint32).astype(np.uint16 if dt in _BITS16 else np.uint8)
        return bits.reshape(dims).view(name)
    if name.startswith("complex"):  # (real, imaginary) pairs
        return np.array(values, dtype=storage).view(name).reshape(dims)
    return np.asarray(values, dtype=storage).astype(name).reshape(dims)


def _decoded_by_onnx(tensor: Any, raw: bytes | None) -> Any:
    """bfloat16, float8, int4, float4, ...: numpy has no such types; onnx decodes them into ml_dtypes
    arrays. Importing it costs a second, paid only when such values are read."""
    from modeltool.deps import require

    onnx = require("onnx", f"reading {onnx_proto.dtype_name(tensor.data_type)} values")
    from onnx import numpy_helper

    copy = onnx.TensorProto.FromString(tensor.SerializeToString())
    if raw is not None:  # read from the file by modeltool (external data: with its checks)
        copy.raw_data = raw
        copy.data_location = onnx.TensorProto.DEFAULT
        del copy.external_data[:]
    return numpy_helper.to_array(copy)


def _external_bytes(tensor: Any, base_dir: str, path: str) -> bytes:
    """The bytes of a tensor stored in a file next to the model (keys `location`, `offset`, `length`),
    refusing locations that leave the model's folder (absolute, `..`, links pointing elsewhere)."""
    info = {_t(e.key): _t(e.value) for e in tensor.external_data}
    name, location = _t(tensor.name), info.get("location", "")
    where = f"{path}: weight {name!r}: external data {location!r}"
    try:
        offset = int(info.get("offset") or 0)
        length = int(info["length"]) if info.get("length") else None
    except ValueError:
        raise LoadError(f"{where}: offset/length are not integers ({info})") from None
    if offset < 0 or length is not None and length < 0:
        raise LoadError(f"{where}: negative offset or length ({offset}, {length})")
    if not location or os.path.isabs(location) or ".." in Path(location).parts:
        raise LoadError(f"{where}: the location must be a file name relative to the model's folder")
    root = os.path.realpath(base_dir)
    file = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, file]) != root:
        raise LoadError(f"{where}: resolves outside the model's folder")
    if not os.path.isfile(file):
        raise LoadError(f"{where}: no such file next to the model")
    return _file_bytes(file, offset, length, where)


def _file_bytes(file: str, offset: int, length: int | None, where: str) -> bytes:
    """`length` bytes (None: all) of `file` from `offset`, checked against the file's size first."""
    with open(file, "rb") as fh:
        available = os.fstat(fh.fileno()).st_size - offset
        if available < 0 or length is not None and length > available:
            raise LoadError(f"{where}: offset {offset} and length {length} run past the end of the file")
        fh.seek(offset)
        return fh.read(-1 if length is None else length)
