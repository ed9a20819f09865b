"""An IR model as an ONNX ModelProto: boundary, graph walk, folds, model.

The inputs and outputs carry the names the source states (as on the TensorFlow route: the IR's
boundary names, cleaned the same way), a dynamic batch named `batch` and other open dims
`<name>_dim<i>`; `--input-shape` fixes dims. `inputs_as_nchw` inputs are declared channels-first and
enter the graph as values already held that way (no transpose); `outputs_as_nchw` outputs leave it so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modeltool.deps import require
from modeltool.errors import UsageError
from modeltool.exporters.direct import passes
from modeltool.exporters.direct.builder import GraphBuilder, Value
from modeltool.exporters.direct.context import Context, NotCovered, onnx_dtype
from modeltool.exporters.direct.layout import channels_first_perm, logical, to_perm
from modeltool.exporters.direct.registry import coverage
from modeltool.exporters.direct.walk import Walker
from modeltool.exporters.onnx_passes import dynamic_dim_name
from modeltool.ir import Model
from modeltool.keras.hub import sequence_inputs
from modeltool.keras.semantics import refuse_lost_semantics, writer_generation
from modeltool.options import Shape

#: what the direct route writes by default: onnxruntime 1.17+ and every current runtime read it
DEFAULT_OPSET = 18
MIN_OPSET = 13


#: weights from this many bytes go to the external data file (smaller ones stay in the model)
EXTERNAL_MIN_BYTES = 1024
#: offsets in the external data file are multiples of this, so onnxruntime can map weights in place
EXTERNAL_ALIGNMENT = 4096


@dataclass
class Built:
    """The model and what the report says about it. The weights stay numpy arrays until the model
    is wanted whole (`proto`) or written with external data (`save_external`), which streams each
    weight from its array to the data file: a model over protobuf's 2 GB never exists in memory
    as a protobuf."""

    graph: Any  # the GraphProto, its initializers not yet in it
    arrays: dict[str, np.ndarray]
    opset: int
    folds: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _proto: Any = None

    @property
    def proto(self) -> Any:
        """The whole ModelProto, weights in memory (made once; the arrays are then let go)."""
        if self._proto is None:
            onnx = require("onnx", "writing ONNX")
            for name in list(self.arrays):  # each array let go once copied: one copy of the weights at a time
                self.graph.initializer.append(onnx.numpy_helper.from_array(self.arrays.pop(name), name))
            self._proto = _model(onnx, self.graph, self.opset)
        return self._proto

    def save(self, path: str) -> None:
        """Write the model with its weights inside, one weight serialized at a time: protobuf
        encodes a repeated field as its elements one after another, so the file is the model
        without weights with each weight's encoding spliced into the graph's bytes (the whole
        model is never one string in memory, as `onnx.save_model` makes it)."""
        onnx = require("onnx", "writing ONNX")
        if self._proto is not None:
            onnx.save_model(self._proto, path)
            return
        graph_head = self.graph.SerializeToString()  # the graph without weights
        tensors = [(name, _tensor_size(onnx, name, self.arrays[name])) for name in self.arrays]
        graph_size = len(graph_head) + sum(_field_size(GRAPH_INITIALIZER, n) for _, n in tensors)
        model = _model(onnx, onnx.GraphProto(), self.opset)
        model.ClearField("graph")
        with open(path, "wb") as out:
            out.write(model.SerializeToString())
            out.write(_field_header(MODEL_GRAPH, graph_size))
            out.write(graph_head)
            for name, size in tensors:
                encoded = onnx.numpy_helper.from_array(self.arrays.pop(name), name).SerializeToString()
                if len(encoded) != size:  # the length written before the graph's bytes must hold
                    raise RuntimeError(f"initializer {name!r}: {len(encoded)} bytes encoded, {size} announced")
                out.write(_field_header(GRAPH_INITIALIZER, size))
                out.write(encoded)
                del encoded

    @property
    def nodes(self) -> int:
        return len(self.graph.node)

    def op_types(self) -> list[str]:
        return sorted({n.op_type for n in self.graph.node})

    def transposes(self) -> int:
        return sum(1 for n in self.graph.node if n.op_type == "Transpose")

    def weight_bytes(self) -> int:
        if self._proto is not None:
            return weight_bytes(self._proto)
        return sum(a.nbytes for a in self.arrays.values())

    def save_external(self, path: str, location: str, per_tensor: bool = False) -> None:
        """Write the model to `path`, every weight of `EXTERNAL_MIN_BYTES` or more into `location`
        (relative to the model's folder: one file, each weight at an aligned offset; or, with
        `per_tensor`, a folder of one file per weight), straight from its array, which is dropped
        once written."""
        onnx = require("onnx", "writing ONNX")
        if self._proto is not None:
            raise RuntimeError("the model was already made whole; save it with onnx.save_model")
        folder = os.path.dirname(os.path.abspath(path))
        data = None if per_tensor else open(os.path.join(folder, location), "wb")  # noqa: SIM115 - closed below
        if per_tensor:
            os.makedirs(os.path.join(folder, location), exist_ok=True)
        try:
            for i, name in enumerate(list(self.arrays)):
                array = self.arrays.pop(name)
                if array.nbytes < EXTERNAL_MIN_BYTES:
                    self.graph.initializer.append(onnx.numpy_helper.from_array(array, name))
                    continue
                tensor = onnx.TensorProto(name=name, data_type=onnx_dtype(str(array.dtype)), dims=list(array.shape))
                if per_tensor:
                    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100]
                    where, offset = f"{location}/{i:05d}_{safe}", 0
                    with open(os.path.join(folder, where), "wb") as out:
                        out.write(memoryview(np.ascontiguousarray(array)).cast("B"))
                else:
                    assert data is not None
                    offset = -data.tell() % EXTERNAL_ALIGNMENT + data.tell()
                    data.seek(offset)
                    data.write(memoryview(np.ascontiguousarray(array)).cast("B"))
                    where = location
                tensor.data_location = onnx.TensorProto.EXTERNAL
                for key, value in (("location", where), ("offset", str(offset)), ("length", str(array.nbytes))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, value
                self.graph.initializer.append(tensor)
                del array
        finally:
            if data is not None:
                data.close()
        onnx.save_model(_model(onnx, self.graph, self.opset), path)


#: field numbers in onnx.proto: ModelProto.graph and GraphProto.initializer
MODEL_GRAPH, GRAPH_INITIALIZER = 7, 5


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field_header(number: int, size: int) -> bytes:
    """The tag (wire type 2, length-delimited) and length of an embedded message field."""
    return _varint(number << 3 | 2) + _varint(size)


def _field_size(number: int, size: int) -> int:
    return len(_field_header(number, size)) + size


#: TensorProto.raw_data's field number (where numpy_helper.from_array puts a numeric array's bytes)
TENSOR_RAW_DATA = 9


def _tensor_size(onnx: Any, name: str, array: np.ndarray) -> int:
    """The encoded size of `from_array(array, name)`, without making it: its header fields, then raw_data."""
    head = onnx.TensorProto(name=name, data_type=onnx_dtype(str(array.dtype)), dims=list(array.shape))
    return head.ByteSize() + (_field_size(TENSOR_RAW_DATA, array.nbytes) if array.nbytes else 0)


def _model(onnx: Any, graph: Any, opset: int) -> Any:
    opsets = [onnx.helper.make_opsetid("", opset)]
    return onnx.helper.make_model(graph, opset_imports=opsets, producer_name="modeltool",
                                  producer_version=version(), ir_version=_ir_version(onnx, opsets))  # fmt: skip


def build(ir: Model, names: tuple[list[str], list[str]], *, opset: int = DEFAULT_OPSET,
          input_shapes: dict[str, Shape] | None = None, inputs_as_nchw: tuple[str, ...] = (),
          outputs_as_nchw: tuple[str, ...] = (), custom: dict[str, Any] | None = None) -> Built:  # fmt: skip
    """`ir` as ONNX; `names` are the (input, output) names to give the graph's boundary. Raises
    NotCovered naming the first layer the direct route cannot write."""
    onnx = require("onnx", "writing ONNX")
    gaps = coverage(ir, custom)
    if gaps:
        raise NotCovered(gaps[0].path, gaps[0].op, gaps[0].reason)
    assert ir.graph is not None and ir.config is not None
    if writer_generation(ir) < 3:
        refuse_lost_semantics(ir.config)  # what no later Keras computes (Keras 1 BatchNormalization modes)
    in_names, out_names = names
    _check_layout_names(in_names, out_names, inputs_as_nchw, outputs_as_nchw)
    shapes = input_shapes or {}
    unknown = set(shapes) - set(in_names)
    if unknown:
        raise UsageError(f"--input-shape: no input named {', '.join(sorted(unknown))}; inputs: {', '.join(in_names)}")
    builder = GraphBuilder(opset)
    ctx = Context(builder, writer_generation(ir))
    walker = Walker(ctx, ir.weights, custom)
    graph_inputs, values = [], []
    sequences = set(in_names) & sequence_inputs()  # token inputs share one symbolic `sequence` length
    for spec, name in zip(ir.graph.inputs, in_names):
        shape = input_shape(spec.shape, shapes.get(name), name)
        dtype = str(spec.dtype or "float32")
        builder.reserve(name)
        perm = channels_first_perm(len(shape)) if name in inputs_as_nchw else None
        if perm is not None and len(shape) < 3:
            raise UsageError(f"--inputs-as-nchw {name}: the input has rank {len(shape)}; only inputs of rank 3 or "
                             "more have a channels axis to move")  # fmt: skip
        value = Value(name, tuple(shape), dtype, perm)
        values.append(value)
        graph_inputs.append(_value_info(onnx, name, value.physical_shape, dtype, name, sequences))
    outs = walker.graph(ir.graph, ir.config, values)
    graph_outputs, final = [], []
    for value, name in zip(outs, out_names):
        if name in outputs_as_nchw:
            if value.rank < 3:
                raise UsageError(f"--outputs-as-nchw {name}: the output has rank {value.rank}; only outputs of rank "
                                 "3 or more have a channels axis to move")  # fmt: skip
            value = to_perm(ctx, value, channels_first_perm(value.rank))
        else:
            ctx.scope = name
            value = logical(ctx, value)
        final.append((value, name))
    names_out = _name_outputs(builder, ctx, final, in_names)
    for (value, _), name in zip(final, names_out):
        graph_outputs.append(_value_info(onnx, name, value.physical_shape, value.dtype, name))
    folds = passes.run_all(builder, names_out)
    graph = onnx.helper.make_graph(builder.nodes, ir.graph.name or "model", graph_inputs, graph_outputs)
    return Built(graph, builder.arrays, opset, folds, ctx.notes)


def input_shape(declared: tuple | None, given: Shape | None, name: str) -> list:
    """An input's shape with `--input-shape` applied (refused where it contradicts the model's)."""
    if declared is None:
        raise NotCovered(name, "InputLayer", "the input's rank is unknown")
    if given is None:
        return list(declared)
    if len(given) != len(declared):
        raise UsageError(f"--input-shape {name}: rank {len(given)} given, the model input has rank {len(declared)} "
                         f"{tuple(declared)}")  # fmt: skip
    for d, g in zip(declared, given):
        if d is not None and g is not None and d != g:
            raise UsageError(f"--input-shape {name}: {tuple(given)} contradicts the model's {tuple(declared)}")
    return [g if g is not None else d for d, g in zip(declared, given)]


def _check_layout_names(ins: list[str], outs: list[str], nchw_in: tuple[str, ...], nchw_out: tuple[str, ...]) -> None:
    for name in nchw_in:
        if name not in ins:
            raise UsageError(f"--inputs-as-nchw {name}: no input named so; inputs: {', '.join(ins)}")
    for name in nchw_out:
        if name not in outs:
            raise UsageError(f"--outputs-as-nchw {name}: no output named so; outputs: {', '.join(outs)}")


def _name_outputs(builder: GraphBuilder, ctx: Context, final: list[tuple[Value, str]], inputs: list[str]) -> list[str]:
    """Give each output tensor its user-facing name: the producing node writes it under that name,
    or an Identity does (a graph input passed through, a tensor that is two outputs)."""
    renamed: dict[str, str] = {}
    names = []
    for value, name in final:
        node = builder.producer.get(value.name)
        if node is not None and value.name not in renamed and name not in builder.arrays and name not in inputs:
            renamed[value.name] = _rename_everywhere(builder, value.name, name)
            names.append(renamed[value.name])
            continue
        ctx.scope = ""
        out = builder.node("Identity", [renamed.get(value.name, value.name)], "", 1)[0]
        names.append(_rename_everywhere(builder, out, name if name not in inputs else f"{name}_out"))
    return names


def _rename_everywhere(builder: GraphBuilder, old: str, new: str) -> str:
    if old == new:
        return new
    if new in builder.producer:
        new = builder.unique(new)
    else:
        builder.reserve(new)
    for node in builder.nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
                builder.producer[new] = node
    builder.producer.pop(old, None)
    return new


def _value_info(onnx: Any, name: str, shape: tuple, dtype: str, prefix: str, sequences: set[str] = frozenset()) -> Any:
    dims = [d if d is not None else dynamic_dim_name(prefix, i, sequences) for i, d in enumerate(shape)]
    return onnx.helper.make_tensor_value_info(name, onnx_dtype(dtype), dims)


def _ir_version(onnx: Any, opsets: list) -> int:
    """The oldest IR version that carries the opset (what runtimes read most widely)."""
    return int(onnx.helper.find_min_ir_version_for(opsets, ignore_unknown=True))


def version() -> str:
    """modeltool's installed version (what the files it writes name as their producer)."""
    try:
        from importlib.metadata import version

        return version("modeltool-tf")
    except Exception:  # noqa: BLE001 - not installed as a distribution (a source checkout)
        return "0"


def weight_bytes(proto: Any) -> int:
    return sum(len(t.raw_data) or np.asarray(t.float_data).nbytes for t in proto.graph.initializer)
