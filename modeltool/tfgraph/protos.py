"""TensorFlow's protobuf messages, declared here so that reading them does not import TensorFlow.

`import tensorflow` takes seconds; the SavedModel, GraphDef, checkpoint-index and object-graph
protos it would give us are plain protobuf. modeltool declares the subset of fields it reads
(field numbers are TensorFlow's, checked against TensorFlow's own descriptors by a test) in a
private descriptor pool, so these classes parse the real files with the protobuf runtime and
skip every field not declared here. Enums are declared as int32: same wire format.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

PACKAGE = "modeltool_tf"

#: message -> [(number, name, type, repeated)]; type is a scalar type name or a message name
SCHEMA: dict[str, list[tuple[int, str, str, bool]]] = {
    "SavedModel": [(1, "saved_model_schema_version", "int64", False), (2, "meta_graphs", "MetaGraphDef", True)],
    "MetaGraphDef": [
        (1, "meta_info_def", "MetaInfoDef", False),
        (2, "graph_def", "GraphDef", False),
        (3, "saver_def", "SaverDef", False),
        (5, "signature_def", "SignatureDefEntry", True),
        (6, "asset_file_def", "AssetFileDef", True),
        (7, "object_graph_def", "SavedObjectGraph", False),
    ],
    "MetaInfoDef": [
        (1, "meta_graph_version", "string", False),
        (4, "tags", "string", True),
        (5, "tensorflow_version", "string", False),
        (6, "tensorflow_git_version", "string", False),
    ],
    "SaverDef": [(1, "filename_tensor_name", "string", False), (3, "restore_op_name", "string", False)],
    "SignatureDefEntry": [(1, "key", "string", False), (2, "value", "SignatureDef", False)],
    "SignatureDef": [
        (1, "inputs", "TensorInfoEntry", True),
        (2, "outputs", "TensorInfoEntry", True),
        (3, "method_name", "string", False),
    ],
    "TensorInfoEntry": [(1, "key", "string", False), (2, "value", "TensorInfo", False)],
    "TensorInfo": [
        (1, "name", "string", False),
        (2, "dtype", "DataType", False),
        (3, "tensor_shape", "TensorShapeProto", False),
        (4, "coo_sparse", "CooSparse", False),
        (5, "composite_tensor", "CompositeTensor", False),
    ],
    "CooSparse": [(1, "values_tensor_name", "string", False)],
    "CompositeTensor": [(2, "components", "TensorInfo", True)],
    "AssetFileDef": [(1, "tensor_info", "TensorInfo", False), (2, "filename", "string", False)],
    "GraphDef": [
        (1, "node", "NodeDef", True),
        (2, "library", "FunctionDefLibrary", False),
        (4, "versions", "VersionDef", False),
    ],
    "VersionDef": [(1, "producer", "int32", False), (2, "min_consumer", "int32", False)],
    "NodeDef": [
        (1, "name", "string", False),
        (2, "op", "string", False),
        (3, "input", "string", True),
        (4, "device", "string", False),
        (5, "attr", "AttrEntry", True),
    ],
    "AttrEntry": [(1, "key", "string", False), (2, "value", "AttrValue", False)],
    "AttrValue": [
        (1, "list", "ListValue", False),
        (2, "s", "bytes", False),
        (3, "i", "int64", False),
        (4, "f", "float", False),
        (5, "b", "bool", False),
        (6, "type", "DataType", False),
        (7, "shape", "TensorShapeProto", False),
        (8, "tensor", "TensorProto", False),
        (9, "placeholder", "string", False),
        (10, "func", "NameAttrList", False),
    ],
    "ListValue": [
        (2, "s", "bytes", True),
        (3, "i", "int64", True),
        (4, "f", "float", True),
        (6, "type", "DataType", True),
        (7, "shape", "TensorShapeProto", True),
    ],
    "NameAttrList": [(1, "name", "string", False)],
    "TensorShapeProto": [(2, "dim", "Dim", True), (3, "unknown_rank", "bool", False)],
    "Dim": [(1, "size", "int64", False), (2, "name", "string", False)],
    "TensorProto": [
        (1, "dtype", "DataType", False),
        (2, "tensor_shape", "TensorShapeProto", False),
        (4, "tensor_content", "bytes", False),
        (5, "float_val", "float", True),
        (6, "double_val", "double", True),
        (7, "int_val", "int32", True),
        (8, "string_val", "bytes", True),
        (10, "int64_val", "int64", True),
        (11, "bool_val", "bool", True),
        (13, "half_val", "int32", True),
    ],
    "FunctionDefLibrary": [(1, "function", "FunctionDef", True)],
    "FunctionDef": [(1, "signature", "OpDef", False), (3, "node_def", "NodeDef", True)],
    "OpDef": [(1, "name", "string", False)],
    "SavedObjectGraph": [(1, "nodes", "SavedObject", True)],
    "SavedObject": [
        (1, "children", "ObjectReference", True),
        (4, "user_object", "SavedUserObject", False),
        (5, "asset", "SavedAsset", False),
        (6, "function", "SavedFunction", False),
        (7, "variable", "SavedVariable", False),
        (13, "registered_name", "string", False),
    ],
    "ObjectReference": [(1, "node_id", "int32", False), (2, "local_name", "string", False)],
    "SavedUserObject": [(1, "identifier", "string", False), (3, "metadata", "string", False)],
    "SavedAsset": [(1, "asset_file_def_index", "int32", False)],
    "SavedFunction": [(1, "concrete_functions", "string", True)],
    "SavedVariable": [
        (1, "dtype", "DataType", False),
        (2, "shape", "TensorShapeProto", False),
        (3, "trainable", "bool", False),
        (6, "name", "string", False),
    ],
    "TrackableObjectGraph": [(1, "nodes", "TrackableObject", True)],
    "TrackableObject": [
        (1, "children", "ObjectReference", True),
        (2, "attributes", "SerializedTensor", True),
        (3, "slot_variables", "SlotVariableReference", True),
    ],
    "SerializedTensor": [
        (1, "name", "string", False),
        (2, "full_name", "string", False),
        (3, "checkpoint_key", "string", False),
    ],  # fmt: skip
    "SlotVariableReference": [
        (1, "original_variable_node_id", "int32", False),
        (2, "slot_name", "string", False),
        (3, "slot_variable_node_id", "int32", False),
    ],
    "BundleHeaderProto": [(1, "num_shards", "int32", False), (2, "endianness", "int32", False)],
    "BundleEntryProto": [
        (1, "dtype", "DataType", False),
        (2, "shape", "TensorShapeProto", False),
        (3, "shard_id", "int32", False),
        (4, "offset", "int64", False),
        (5, "size", "int64", False),
        (6, "crc32c", "fixed32", False),
        (7, "slices", "TensorSliceProto", True),
    ],
    "TensorSliceProto": [(1, "extent", "Extent", True)],
    "Extent": [(1, "start", "int64", False), (2, "length", "int64", False)],
    # keras_metadata.pb of Keras 2 SavedModels (Keras's SavedMetadata / SavedObject)
    "KerasSavedMetadata": [(1, "nodes", "KerasSavedObject", True)],
    "KerasSavedObject": [
        (2, "node_id", "int32", False),
        (3, "node_path", "string", False),
        (4, "identifier", "string", False),
        (5, "metadata", "string", False),
    ],
}

#: TensorFlow's DataType enum (text-format GraphDefs spell dtypes by these names); `_REF` = +100
DT_NAMES = {
    0: "DT_INVALID", 1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 5: "DT_INT16", 6: "DT_INT8",
    7: "DT_STRING", 8: "DT_COMPLEX64", 9: "DT_INT64", 10: "DT_BOOL", 11: "DT_QINT8", 12: "DT_QUINT8",
    13: "DT_QINT32", 14: "DT_BFLOAT16", 15: "DT_QINT16", 16: "DT_QUINT16", 17: "DT_UINT16", 18: "DT_COMPLEX128",
    19: "DT_HALF", 20: "DT_RESOURCE", 21: "DT_VARIANT", 22: "DT_UINT32", 23: "DT_UINT64",
}  # fmt: skip

_SCALARS = {"int64": 3, "int32": 5, "string": 9, "bytes": 12, "bool": 8, "float": 2, "double": 1, "fixed32": 7}

#: tensorflow DataType enum -> numpy dtype name (the types a model file stores)
DTYPES: dict[int, str] = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 8: "complex64",
    9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128", 19: "float16", 20: "resource",
    21: "variant", 22: "uint32", 23: "uint64",
}  # fmt: skip


def dtype_name(enum: int) -> str:
    """numpy-style name of a TF DataType (reference types, enum + 100, map to their base)."""
    return DTYPES.get(enum % 100, f"dtype{enum}")


@cache
def _classes() -> dict[str, Any]:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="modeltool_tf.proto", package=PACKAGE, syntax="proto3")
    enum = fdp.enum_type.add(name="DataType")
    for number, name in sorted(DT_NAMES.items()):
        enum.value.add(name=name, number=number)
    for number, name in sorted(DT_NAMES.items()):
        if number:
            enum.value.add(name=f"{name}_REF", number=number + 100)
    for msg, fields in SCHEMA.items():
        m = fdp.message_type.add(name=msg)
        for number, name, typ, repeated in fields:
            f = m.field.add(name=name, number=number)
            f.label = f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL
            if typ in _SCALARS:
                f.type = _SCALARS[typ]
            elif typ == "DataType":
                f.type, f.type_name = f.TYPE_ENUM, f".{PACKAGE}.DataType"
            else:
                f.type, f.type_name = f.TYPE_MESSAGE, f".{PACKAGE}.{typ}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in SCHEMA}


def parse(message: str, data: bytes) -> Any:
    """Parse `data` as the named message; raises google.protobuf.message.DecodeError when malformed."""
    cls = _classes()[message]
    msg = cls()
    msg.ParseFromString(data)
    return msg


def new(message: str) -> Any:
    """An empty message of the named type (tests and writers of small protos)."""
    return _classes()[message]()


def shape_of(proto: Any) -> tuple | None:
    """A TensorShapeProto as a modeltool shape (None = unknown rank, None dims = unknown size)."""
    if proto is None or proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in proto.dim)


def attrs_of(node: Any) -> dict[str, Any]:
    """A NodeDef's attributes as {key: AttrValue}."""
    return {a.key: a.value for a in node.attr}


def tensor_value(tensor: Any, shape: tuple | None = None) -> np.ndarray:
    """A TensorProto's values (tensor_content bytes, or the typed repeated field, broadcast)."""
    dtype = np.dtype(dtype_name(tensor.dtype))
    shape = shape_of(tensor.tensor_shape) if shape is None else shape
    size = int(np.prod(shape)) if shape else 1
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype=dtype).reshape(shape)
    field = {"f": tensor.float_val, "i": tensor.int_val, "u": tensor.int_val, "b": tensor.bool_val}
    values = tensor.double_val if dtype == np.float64 else tensor.int64_val if dtype == np.int64 else None
    if dtype == np.float16:
        values = np.array(list(tensor.half_val), dtype=np.uint16).view(np.float16)
    if values is None:
        values = field.get(dtype.kind, tensor.float_val)
    arr = np.array(list(values), dtype=dtype)
    if arr.size == size:
        return arr.reshape(shape)
    if arr.size == 0:
        return np.zeros(shape, dtype)
    return np.concatenate([arr, np.full(size - arr.size, arr[-1], dtype)]).reshape(shape)  # last value repeats
