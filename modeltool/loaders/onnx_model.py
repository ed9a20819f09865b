"""ONNX models: op-level graph, opsets, initializers as weights. No onnxruntime, no TensorFlow."""

from __future__ import annotations

import os
from typing import Any

from modeltool.deps import require
from modeltool.errors import LoadError
from modeltool.formats import Format, describe
from modeltool.ir import Graph, Metadata, Model, Node, TensorSpec, Weight

#: above this many bytes, ONNX shape inference is skipped (it copies the whole model)
SHAPE_INFERENCE_LIMIT = 256 * 1024 * 1024


def _dims(type_proto: Any) -> tuple | None:
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)


def _dtype(onnx: Any, elem_type: int) -> str:
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _spec(onnx: Any, vi: Any) -> TensorSpec:
    elem = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
    return TensorSpec(_t(vi.name), _dims(vi.type), _dtype(onnx, elem) if elem else None)


def load(path: str, **options: Any) -> Model:
    onnx = require("onnx", "reading ONNX files")
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(path, load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise LoadError(f"{path}: not a valid ONNX protobuf ({str(exc).splitlines()[0][:160]})") from exc
    if not proto.HasField("graph") or not proto.graph.node and not proto.graph.output:
        raise LoadError(f"{path}: ONNX file holds no graph")
    size = os.path.getsize(path)
    if size < SHAPE_INFERENCE_LIMIT:
        try:
            proto = onnx.shape_inference.infer_shapes(proto)
        except Exception:  # noqa: BLE001 - shape inference is a bonus; the raw graph is still valid
            pass
    g = proto.graph
    base_dir = os.path.dirname(os.path.abspath(path))
    init_names = {_t(t.name) for t in g.initializer}
    shapes = {_t(vi.name): _dims(vi.type) for vi in [*g.value_info, *g.output, *g.input]}

    weights = []
    for t in g.initializer:
        weights.append(
            Weight(
                _t(t.name),
                None,
                "initializer",
                tuple(int(d) for d in t.dims),
                _dtype(onnx, t.data_type),
                True,
                _reader(onnx, t, base_dir),
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
        attrs = {_t(a.name): _attr_value(onnx, a) for a in n.attribute}
        node = Node(name, _t(n.op_type), attrs, [[x for x in n_in if x and x not in init_names]],
                    [shapes.get(o) for o in n_out], params=params, trainable_params=params)  # fmt: skip
        node.attrs.update({"outputs": n_out, "domain": _t(n.domain) or "ai.onnx"})
        nodes.append(node)
    for w in weights:
        w.layer = owner.get(w.name)

    inputs = [_spec(onnx, vi) for vi in g.input if _t(vi.name) not in init_names]
    outputs = [_spec(onnx, vi) for vi in g.output]
    opsets = {(_t(o.domain) or "ai.onnx"): o.version for o in proto.opset_import}
    writer = {"producer": f"{_t(proto.producer_name)} {_t(proto.producer_version)}".strip(),
              "ir_version": str(proto.ir_version), "opset": str(opsets.get("ai.onnx", ""))}  # fmt: skip
    extra = {"opsets": opsets, "graph_name": _t(g.name),
             "metadata_props": {_t(p.key): _t(p.value) for p in proto.metadata_props}}  # fmt: skip
    meta = Metadata(Format.ONNX.value, describe(Format.ONNX), size, writer, None, extra)
    return Model(path, meta, Graph(nodes, inputs, outputs, "op", _t(g.name)), weights)


def _reader(onnx: Any, tensor: Any, base_dir: str):
    def read():
        from onnx import numpy_helper

        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            import copy

            t = copy.deepcopy(tensor)
            onnx.external_data_helper.load_external_data_for_tensor(t, base_dir)
            yield numpy_helper.to_array(t)
        else:
            yield numpy_helper.to_array(tensor)

    return read


def _t(value: Any) -> str:
    """A protobuf string field; proto2 hands back bytes when a (corrupted) file holds invalid UTF-8."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _attr_value(onnx: Any, attr: Any) -> Any:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value][:64]
    if hasattr(value, "dims"):  # a TensorProto attribute
        return {"tensor": list(value.dims)}
    if hasattr(value, "node"):  # a subgraph (If/Loop bodies)
        return {"graph": value.name, "nodes": len(value.node)}
    return value
