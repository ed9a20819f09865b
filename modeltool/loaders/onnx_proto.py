"""ONNX's protobuf messages, declared here so that reading an ONNX file does not import `onnx`.

`import onnx` takes over a second (its helpers import ml_dtypes, whose extension registers a dozen
numpy dtypes), ten times what the rest of `modeltool inspect` costs. The file format itself is plain
protobuf: modeltool declares onnx-ml.proto's messages (every field, with onnx's numbers, types,
oneofs and closed enums, checked against onnx's own descriptors by a test) in a private descriptor
pool, so the protobuf runtime parses a file exactly as `onnx.load` does. The package is named
`onnx` so that messages and parse errors read as they do with onnx's classes; the private pool keeps
the two sets of classes apart.

A large file is not read whole: `read_model` maps it and walks the wire format just deep enough to
cut the initializers' `raw_data` (nearly all of its bytes) out before parsing, so that inspecting a
100 MB model reads kilobytes, and weights are read from the file when their values are asked for.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from functools import cache
from typing import Any

PACKAGE = "onnx"

#: message -> [(number, name, type, repeated)]; type is a scalar type name, a message or an enum;
#: nested messages and enums are spelled "Outer.Inner", as in onnx-ml.proto
SCHEMA: dict[str, list[tuple[int, str, str, bool]]] = {
    "ModelProto": [
        (1, "ir_version", "int64", False),
        (8, "opset_import", "OperatorSetIdProto", True),
        (2, "producer_name", "string", False),
        (3, "producer_version", "string", False),
        (4, "domain", "string", False),
        (5, "model_version", "int64", False),
        (6, "doc_string", "string", False),
        (7, "graph", "GraphProto", False),
        (14, "metadata_props", "StringStringEntryProto", True),
        (20, "training_info", "TrainingInfoProto", True),
        (25, "functions", "FunctionProto", True),
        (26, "configuration", "DeviceConfigurationProto", True),
    ],
    "OperatorSetIdProto": [(1, "domain", "string", False), (2, "version", "int64", False)],
    "StringStringEntryProto": [(1, "key", "string", False), (2, "value", "string", False)],
    "GraphProto": [
        (1, "node", "NodeProto", True),
        (2, "name", "string", False),
        (5, "initializer", "TensorProto", True),
        (15, "sparse_initializer", "SparseTensorProto", True),
        (10, "doc_string", "string", False),
        (11, "input", "ValueInfoProto", True),
        (12, "output", "ValueInfoProto", True),
        (13, "value_info", "ValueInfoProto", True),
        (14, "quantization_annotation", "TensorAnnotation", True),
        (16, "metadata_props", "StringStringEntryProto", True),
    ],
    "NodeProto": [
        (1, "input", "string", True),
        (2, "output", "string", True),
        (3, "name", "string", False),
        (4, "op_type", "string", False),
        (7, "domain", "string", False),
        (8, "overload", "string", False),
        (5, "attribute", "AttributeProto", True),
        (6, "doc_string", "string", False),
        (9, "metadata_props", "StringStringEntryProto", True),
        (10, "device_configurations", "NodeDeviceConfigurationProto", True),
    ],
    "AttributeProto": [
        (1, "name", "string", False),
        (21, "ref_attr_name", "string", False),
        (13, "doc_string", "string", False),
        (20, "type", "AttributeProto.AttributeType", False),
        (2, "f", "float", False),
        (3, "i", "int64", False),
        (4, "s", "bytes", False),
        (5, "t", "TensorProto", False),
        (6, "g", "GraphProto", False),
        (22, "sparse_tensor", "SparseTensorProto", False),
        (14, "tp", "TypeProto", False),
        (7, "floats", "float", True),
        (8, "ints", "int64", True),
        (9, "strings", "bytes", True),
        (10, "tensors", "TensorProto", True),
        (11, "graphs", "GraphProto", True),
        (23, "sparse_tensors", "SparseTensorProto", True),
        (15, "type_protos", "TypeProto", True),
    ],
    "ValueInfoProto": [
        (1, "name", "string", False),
        (2, "type", "TypeProto", False),
        (3, "doc_string", "string", False),
        (4, "metadata_props", "StringStringEntryProto", True),
    ],
    "TensorProto": [
        (1, "dims", "int64", True),
        (2, "data_type", "int32", False),
        (3, "segment", "TensorProto.Segment", False),
        (4, "float_data", "float", True),
        (5, "int32_data", "int32", True),
        (6, "string_data", "bytes", True),
        (7, "int64_data", "int64", True),
        (8, "name", "string", False),
        (12, "doc_string", "string", False),
        (9, "raw_data", "bytes", False),
        (13, "external_data", "StringStringEntryProto", True),
        (14, "data_location", "TensorProto.DataLocation", False),
        (10, "double_data", "double", True),
        (11, "uint64_data", "uint64", True),
        (16, "metadata_props", "StringStringEntryProto", True),
    ],
    "TensorProto.Segment": [(1, "begin", "int64", False), (2, "end", "int64", False)],
    "SparseTensorProto": [
        (1, "values", "TensorProto", False),
        (2, "indices", "TensorProto", False),
        (3, "dims", "int64", True),
    ],
    "TensorShapeProto": [(1, "dim", "TensorShapeProto.Dimension", True)],
    "TensorShapeProto.Dimension": [
        (1, "dim_value", "int64", False),
        (2, "dim_param", "string", False),
        (3, "denotation", "string", False),
    ],
    "TypeProto": [
        (1, "tensor_type", "TypeProto.Tensor", False),
        (4, "sequence_type", "TypeProto.Sequence", False),
        (5, "map_type", "TypeProto.Map", False),
        (9, "optional_type", "TypeProto.Optional", False),
        (8, "sparse_tensor_type", "TypeProto.SparseTensor", False),
        (7, "opaque_type", "TypeProto.Opaque", False),
        (6, "denotation", "string", False),
    ],
    "TypeProto.Tensor": [(1, "elem_type", "int32", False), (2, "shape", "TensorShapeProto", False)],
    "TypeProto.Sequence": [(1, "elem_type", "TypeProto", False)],
    "TypeProto.Map": [(1, "key_type", "int32", False), (2, "value_type", "TypeProto", False)],
    "TypeProto.Optional": [(1, "elem_type", "TypeProto", False)],
    "TypeProto.SparseTensor": [(1, "elem_type", "int32", False), (2, "shape", "TensorShapeProto", False)],
    "TypeProto.Opaque": [(1, "domain", "string", False), (2, "name", "string", False)],
    "TensorAnnotation": [
        (1, "tensor_name", "string", False),
        (2, "quant_parameter_tensor_names", "StringStringEntryProto", True),
    ],
    "TrainingInfoProto": [
        (1, "initialization", "GraphProto", False),
        (2, "algorithm", "GraphProto", False),
        (3, "initialization_binding", "StringStringEntryProto", True),
        (4, "update_binding", "StringStringEntryProto", True),
    ],
    "FunctionProto": [
        (1, "name", "string", False),
        (4, "input", "string", True),
        (5, "output", "string", True),
        (6, "attribute", "string", True),
        (11, "attribute_proto", "AttributeProto", True),
        (7, "node", "NodeProto", True),
        (8, "doc_string", "string", False),
        (9, "opset_import", "OperatorSetIdProto", True),
        (10, "domain", "string", False),
        (13, "overload", "string", False),
        (12, "value_info", "ValueInfoProto", True),
        (14, "metadata_props", "StringStringEntryProto", True),
    ],
    "DeviceConfigurationProto": [
        (1, "name", "string", False),
        (2, "num_devices", "int32", False),
        (3, "device", "string", True),
    ],
    "NodeDeviceConfigurationProto": [
        (1, "configuration_id", "string", False),
        (2, "sharding_spec", "ShardingSpecProto", True),
        (3, "pipeline_stage", "int32", False),
    ],
    "ShardingSpecProto": [
        (1, "tensor_name", "string", False),
        (2, "device", "int64", True),
        (3, "index_to_device_group_map", "IntIntListEntryProto", True),
        (4, "sharded_dim", "ShardedDimProto", True),
    ],
    "IntIntListEntryProto": [(1, "key", "int64", False), (2, "value", "int64", True)],
    "ShardedDimProto": [(1, "axis", "int64", False), (2, "simple_sharding", "SimpleShardedDimProto", True)],
    "SimpleShardedDimProto": [
        (1, "dim_value", "int64", False),
        (2, "dim_param", "string", False),
        (3, "num_shards", "int64", False),
    ],
}

#: message -> (oneof name, its member fields): a later member clears an earlier one, as in onnx
ONEOFS: dict[str, tuple[str, tuple[str, ...]]] = {
    "TypeProto": ("value", ("tensor_type", "sequence_type", "map_type", "optional_type", "sparse_tensor_type",
                            "opaque_type")),
    "TensorShapeProto.Dimension": ("value", ("dim_value", "dim_param")),
    "SimpleShardedDimProto": ("dim", ("dim_value", "dim_param")),
}  # fmt: skip

#: repeated numeric fields onnx declares packed (only how they are written; either form parses)
PACKED: dict[str, tuple[str, ...]] = {
    "TensorProto": ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"),
}

#: the enums fields are typed with (proto2 enums are closed: an unknown value reads as the default)
ENUMS: dict[str, dict[str, int]] = {
    "AttributeProto.AttributeType": {
        "UNDEFINED": 0, "FLOAT": 1, "INT": 2, "STRING": 3, "TENSOR": 4, "GRAPH": 5, "SPARSE_TENSOR": 11,
        "TYPE_PROTO": 13, "FLOATS": 6, "INTS": 7, "STRINGS": 8, "TENSORS": 9, "GRAPHS": 10, "SPARSE_TENSORS": 12,
        "TYPE_PROTOS": 14,
    },
    "TensorProto.DataLocation": {"DEFAULT": 0, "EXTERNAL": 1},
}  # fmt: skip

#: TensorProto.DataType -> the numpy dtype name onnx gives it (`onnx.helper.tensor_dtype_to_np_dtype`);
#: 16 and up are ml_dtypes types
DTYPES: dict[int, str] = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "object", 9: "bool",
    10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16",
    17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz", 21: "uint4", 22: "int4",
    23: "float4_e2m1fn", 24: "float8_e8m0fnu", 25: "uint2", 26: "int2", 27: "float6_e2m3fn", 28: "float6_e3m2fn",
}  # fmt: skip

#: TensorProto.DataType 0: a tensor without a type (invalid as a weight; shown, not guessed)
UNDEFINED = 0
#: TensorProto.DataType 8: strings, stored in `string_data`
STRING = 8
#: TensorProto.DataLocation.EXTERNAL: values live in a file next to the model
EXTERNAL = 1

#: files above this size are mapped and scanned so that weight bytes stay on disk (see `read_model`)
LAZY_RAW_DATA_BYTES = 4 * 1024 * 1024

_SCALARS = {"int64": 3, "uint64": 4, "int32": 5, "string": 9, "bytes": 12, "bool": 8, "float": 2, "double": 1}


def dtype_name(data_type: int) -> str:
    """numpy-style name of an ONNX TensorProto.DataType; a type this table does not know (a newer
    ONNX's) reads "dtype<N>" rather than failing the whole file."""
    if data_type == UNDEFINED:
        return "undefined"
    return DTYPES.get(data_type, f"dtype{data_type}")


def _file_descriptor() -> Any:
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto(name="modeltool/onnx-ml.proto", package=PACKAGE)  # proto2, as onnx
    messages: dict[str, Any] = {}
    for full in SCHEMA:  # outer messages come before their nested ones in SCHEMA's order of keys
        outer, _, inner = full.rpartition(".")
        messages[full] = (messages[outer].nested_type if outer else fdp.message_type).add(name=inner)
    for full, values in ENUMS.items():
        outer, _, inner = full.rpartition(".")
        enum = messages[outer].enum_type.add(name=inner)
        for name, number in values.items():
            enum.value.add(name=name, number=number)
    for full, fields in SCHEMA.items():
        m = messages[full]
        oneof_name, members = ONEOFS.get(full, ("", ()))
        if oneof_name:
            m.oneof_decl.add(name=oneof_name)
        for number, name, typ, repeated in fields:
            f = m.field.add(name=name, number=number)
            f.label = f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL
            if typ in _SCALARS:
                f.type = _SCALARS[typ]
            else:
                f.type = f.TYPE_ENUM if typ in ENUMS else f.TYPE_MESSAGE
                f.type_name = f".{PACKAGE}.{typ}"
            if name in members:
                f.oneof_index = 0
            if name in PACKED.get(full, ()):
                f.options.packed = True
    return fdp


@cache
def _classes() -> dict[str, Any]:
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in SCHEMA}


def message_class(name: str) -> Any:
    """The message class of `name` ("ModelProto", "TypeProto.Tensor")."""
    return _classes()[name]


def parse_model(data: bytes) -> Any:
    """A ModelProto from the bytes of an .onnx file, parsed as `onnx.load` parses it: raises
    google.protobuf.message.DecodeError when the bytes are not one whole ModelProto."""
    from google.protobuf.message import DecodeError

    model = _classes()["ModelProto"]()
    consumed = model.ParseFromString(data)
    if consumed is not None and consumed != len(data):
        raise DecodeError(f"Protobuf decoding consumed too few bytes: {consumed} out of {len(data)}")
    return model


def read_model(path: str, lazy_above: int = LAZY_RAW_DATA_BYTES) -> tuple[Any, list[tuple[int, int] | None], int]:
    """The ModelProto of an .onnx file, the place of each initializer's raw_data in the file, and the
    file's size.

    Above `lazy_above` bytes the file is mapped, not read: the graph initializers' `raw_data` (nearly
    all of a large model) stay on disk, and the list says, per initializer, where its bytes are
    ((offset, length), or None when it has no raw_data); the message then has no raw_data for them.
    Smaller files, any file whose layout the scan does not follow (groups, a truncated field) and
    files of many small fields (which protobuf parses faster than the scan walks them) are parsed
    whole, as `onnx.load` does, and the list is empty.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        scanned = _scan(fh, size) if size > lazy_above else None
        if scanned is None:
            return parse_model(fh.read()), [], size
    return parse_model(scanned[0]), scanned[1], size


def _scan(fh: Any, size: int) -> tuple[bytes, list[tuple[int, int] | None]] | None:
    try:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # a file system without mmap: the file is read whole
        return None
    with mapped:
        return _without_raw_data(mapped, size)


class _Unusual(Exception):
    """A layout the scan leaves to protobuf (which may accept it, or raise a DecodeError), or a file
    of so many small fields that protobuf's C parser reads it faster than the scan walks it."""


#: the scan walks at most one field per this many bytes of file, plus FIELDS_FREE, then gives up
BYTES_PER_FIELD, FIELDS_FREE = 4096, 256


def _without_raw_data(mapped: mmap.mmap, size: int) -> tuple[bytes, list[tuple[int, int] | None]] | None:
    """The file's bytes with the initializers' raw_data fields cut out, and where those were; None
    when the layout is unusual. Only ModelProto.graph (7), GraphProto.initializer (5) and
    TensorProto.raw_data (9) are looked into; every other field is copied as it is."""
    buf = memoryview(mapped)
    scan = _Scan(buf, size // BYTES_PER_FIELD + FIELDS_FREE)
    try:
        return scan.model(size), scan.spans
    except _Unusual:
        return None
    finally:
        del scan  # no view of the mapping may outlive it
        buf.release()


class _Scan:
    """A walk over the protobuf wire format of a mapped ModelProto, by field (key, length, value)."""

    def __init__(self, buf: memoryview, fields_left: int) -> None:
        self.buf, self.fields_left = buf, fields_left
        self.spans: list[tuple[int, int] | None] = []

    def model(self, size: int) -> bytes:
        pieces, run = [], 0
        for number, wire, start, value, end in self.fields(0, size):
            if number == 7 and wire == 2:  # ModelProto.graph
                pieces += [self.buf[run:start], _field(7, self.graph(value, end))]
                run = end
        pieces.append(self.buf[run:size])
        return b"".join(pieces)

    def graph(self, begin: int, stop: int) -> bytes:
        pieces, run = [], begin
        for number, wire, start, value, end in self.fields(begin, stop):
            if number != 5 or wire != 2:  # not GraphProto.initializer
                continue
            tensor, tensor_run, span = [], value, None
            for t_number, t_wire, t_start, t_value, t_end in self.fields(value, end):
                if t_number == 9 and t_wire == 2:  # TensorProto.raw_data; the last one counts, as in protobuf
                    tensor.append(self.buf[tensor_run:t_start])
                    tensor_run, span = t_end, (t_value, t_end - t_value)
            self.spans.append(span)
            if span is not None:
                tensor.append(self.buf[tensor_run:end])
                pieces += [self.buf[run:start], _field(5, b"".join(tensor))]
                run = end
        pieces.append(self.buf[run:stop])
        return b"".join(pieces)

    def fields(self, begin: int, stop: int) -> Iterator[tuple[int, int, int, int, int]]:
        """The fields of the message in buf[begin:stop]: (number, wire type, start of the field, start
        of its value, end)."""
        buf, pos = self.buf, begin
        while pos < stop:
            self.fields_left -= 1
            if self.fields_left < 0:
                raise _Unusual("many small fields")
            key, value = _varint(buf, pos, stop)
            number, wire = key >> 3, key & 7
            if wire == 0:
                end = _varint(buf, value, stop)[1]
            elif wire == 2:
                length, value = _varint(buf, value, stop)
                end = value + length
            elif wire in (1, 5):
                end = value + (8 if wire == 1 else 4)
            else:
                raise _Unusual(f"wire type {wire}")
            if number == 0 or end > stop:
                raise _Unusual("field 0 or truncated field")
            yield number, wire, pos, value, end
            pos = end


def _varint(buf: memoryview, pos: int, stop: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= stop or shift > 63:
            raise _Unusual("bad varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: key, length, payload."""
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
