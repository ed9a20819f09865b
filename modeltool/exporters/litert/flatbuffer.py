"""The .tflite file as it is written: tensors, buffers, operator codes, operators, a SignatureDef and
metadata, serialized with the `flatbuffers` package and LiteRT's own generated schema module
(`ai_edge_litert.schema_py_generated`, the object API LiteRT ships for exactly this).

Buffers start 16-byte aligned (as the TFLite converter writes them): XNNPACK and the reference
kernels read weights in place, and a misaligned buffer would be copied or refused. Buffer 0 is the
empty buffer every tensor without data points at, as the schema requires. Equal constants are
stored once (keyed by dtype, shape and bytes), which the converter also does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modeltool.deps import require

#: LiteRT's schema version (the `version` field every reader checks)
SCHEMA_VERSION = 3
#: where buffer data starts, in bytes
BUFFER_ALIGNMENT = 16

#: numpy dtype name -> the schema's TensorType name
TENSOR_TYPES = {"float32": "FLOAT32", "float16": "FLOAT16", "int32": "INT32", "uint8": "UINT8", "int64": "INT64",
                "bool": "BOOL", "int8": "INT8", "int16": "INT16"}  # fmt: skip


def schema() -> Any:
    """LiteRT's generated schema module (object API: ModelT, TensorT, OperatorT, ...)."""
    return require("ai_edge_litert.schema_py_generated", "writing TFLite directly")


@dataclass
class Tensor:
    """One tensor of the subgraph. `shape` uses 1 where Keras leaves a dim open, `signature` -1."""

    index: int
    name: str
    shape: tuple
    dtype: str
    buffer: int = 0
    quantization: Any = None

    @property
    def signature(self) -> list[int]:
        return [-1 if d is None else int(d) for d in self.shape]

    @property
    def static_shape(self) -> list[int]:
        return [1 if d is None else int(d) for d in self.shape]


@dataclass
class Operator:
    """One operator: its builtin name (`CONV_2D`), tensor indices and options object (or None)."""

    op: str
    inputs: list[int]
    outputs: list[int]
    options: Any = None
    version: int = 1


@dataclass
class LiteModel:
    """One subgraph being written. Tensors are referred to by index; constants are deduplicated."""

    tensors: list[Tensor] = field(default_factory=list)
    buffers: list[np.ndarray | None] = field(default_factory=lambda: [None])
    operators: list[Operator] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    _constants: dict[tuple, int] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)

    def unique(self, name: str) -> str:
        if name not in self._names:
            self._names.add(name)
            return name
        k = 1
        while f"{name}_{k}" in self._names:
            k += 1
        self._names.add(f"{name}_{k}")
        return f"{name}_{k}"

    def tensor(self, name: str, shape: tuple, dtype: str = "float32") -> int:
        """A new tensor without data (an activation); returns its index."""
        if dtype not in TENSOR_TYPES:
            raise ValueError(f"no TFLite tensor type for {dtype}")
        self.tensors.append(Tensor(len(self.tensors), self.unique(name), tuple(shape), dtype))
        return len(self.tensors) - 1

    def constant(self, name: str, value: np.ndarray) -> int:
        """A tensor holding `value` (stored once however many ops read the same numbers)."""
        value = np.ascontiguousarray(value)
        key = (value.dtype.str, value.shape, hashlib.sha1(memoryview(value).cast("B")).digest())
        found = self._constants.get(key)
        if found is not None:
            return found
        index = self.tensor(name, value.shape, value.dtype.name)
        self.buffers.append(value)
        self.tensors[index].buffer = len(self.buffers) - 1
        self._constants[key] = index
        return index

    def value(self, index: int) -> np.ndarray | None:
        """The data of a constant tensor, None for an activation."""
        buffer = self.tensors[index].buffer
        return self.buffers[buffer] if buffer else None

    def add(self, op: str, inputs: list[int], outputs: list[int], options: Any = None, version: int = 1) -> Operator:
        operator = Operator(op, list(inputs), list(outputs), options, version)
        self.operators.append(operator)
        return operator

    def producers(self) -> dict[int, Operator]:
        return {t: op for op in self.operators for t in op.outputs}

    def consumers(self) -> dict[int, list[Operator]]:
        out: dict[int, list[Operator]] = {}
        for op in self.operators:
            for t in op.inputs:
                if t >= 0:
                    out.setdefault(t, []).append(op)
        return out

    def serialize(self, names: tuple[list[str], list[str]], metadata: dict[str, Any],
                  graph_name: str = "main") -> bytes:  # fmt: skip
        """The whole file: unused tensors and buffers dropped, then packed."""
        self._compact()
        s = schema()
        flatbuffers = require("flatbuffers", "writing TFLite directly")
        codes: dict[tuple[str, int], int] = {}
        operators = []
        for op in self.operators:
            code = codes.setdefault((op.op, op.version), len(codes))
            o = s.OperatorT()
            o.opcodeIndex, o.inputs, o.outputs = code, list(op.inputs), list(op.outputs)
            if op.options is not None:
                o.builtinOptionsType = getattr(s.BuiltinOptions, type(op.options).__name__[:-1])
                o.builtinOptions = op.options
            operators.append(o)
        opcodes = []
        for (name, version), _ in sorted(codes.items(), key=lambda kv: kv[1]):
            c = s.OperatorCodeT()
            c.builtinCode = getattr(s.BuiltinOperator, name)
            c.deprecatedBuiltinCode = min(c.builtinCode, s.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            c.version = version
            opcodes.append(c)
        tensors = []
        for t in self.tensors:
            tt = s.TensorT()
            tt.name, tt.type, tt.buffer = t.name, getattr(s.TensorType, TENSOR_TYPES[t.dtype]), t.buffer
            tt.shape = np.asarray(t.static_shape, dtype=np.int32)
            if any(d is None for d in t.shape):
                tt.shapeSignature = np.asarray(t.signature, dtype=np.int32)
            tt.quantization = t.quantization
            tensors.append(tt)
        sub = s.SubGraphT()
        sub.tensors, sub.operators, sub.name = tensors, operators, graph_name
        sub.inputs, sub.outputs = self.inputs, self.outputs
        sig = s.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = "serving_default", 0
        sig.inputs = [_tensor_map(s, n, i) for n, i in zip(names[0], self.inputs)]
        sig.outputs = [_tensor_map(s, n, i) for n, i in zip(names[1], self.outputs)]
        buffers = [_AlignedBuffer(b) for b in self.buffers]
        meta = s.MetadataT()
        meta.name, meta.buffer = "modeltool", len(buffers)
        buffers.append(_AlignedBuffer(np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)))
        model = s.ModelT()
        model.version, model.operatorCodes, model.subgraphs = SCHEMA_VERSION, opcodes, [sub]
        model.description = f"modeltool: {metadata.get('source', '')}"
        model.buffers, model.metadata, model.signatureDefs = buffers, [meta], [sig]
        total = sum(b.nbytes for b in self.buffers if b is not None)
        builder = flatbuffers.Builder(total + 1024 * 1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    def _compact(self) -> None:
        """Drop tensors no operator or boundary uses (weights a fold replaced) and their buffers."""
        used = set(self.inputs) | set(self.outputs)
        for op in self.operators:
            used.update(t for t in op.inputs + op.outputs if t >= 0)
        keep = [t for t in self.tensors if t.index in used]
        remap = {t.index: k for k, t in enumerate(keep)}
        buffers: list[np.ndarray | None] = [None]
        for t in keep:
            t.index = remap[t.index]
            if t.buffer:
                buffers.append(self.buffers[t.buffer])
                t.buffer = len(buffers) - 1
        self.tensors, self.buffers = keep, buffers
        self._constants.clear()
        for op in self.operators:
            op.inputs = [remap[t] if t >= 0 else t for t in op.inputs]
            op.outputs = [remap[t] for t in op.outputs]
        self.inputs = [remap[t] for t in self.inputs]
        self.outputs = [remap[t] for t in self.outputs]


def _tensor_map(s: Any, name: str, index: int) -> Any:
    m = s.TensorMapT()
    m.name, m.tensorIndex = name, index
    return m


class _AlignedBuffer:
    """A Buffer table whose data vector starts on a `BUFFER_ALIGNMENT` boundary."""

    def __init__(self, data: np.ndarray | None) -> None:
        self.data = data

    def Pack(self, builder: Any) -> int:  # noqa: N802 - the object API's method name
        s = schema()
        vector = None
        if self.data is not None:
            payload = np.ascontiguousarray(self.data).view(np.uint8).reshape(-1)
            builder.StartVector(1, payload.size, BUFFER_ALIGNMENT)
            builder.head -= payload.size
            builder.Bytes[builder.head : builder.head + payload.size] = payload.tobytes()
            builder.vectorNumElems = payload.size
            vector = builder.EndVector()
        s.BufferStart(builder)
        if vector is not None:
            s.BufferAddData(builder, vector)
        return s.BufferEnd(builder)
