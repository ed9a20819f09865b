"""TFLite flatbuffers, read with the generated schema reader (`tflite` package) over an mmap.

Subgraphs, tensors (with shape signatures and quantization), operators (builtin and custom, Flex
ops included) and SignatureDefs. Constant buffers become weights; their bytes are paged in only when
a value is asked for. Neither TensorFlow nor the LiteRT interpreter is needed.
"""

from __future__ import annotations

import mmap
import os
from contextlib import contextmanager
from typing import Any

import numpy as np

from modeltool.deps import require
from modeltool.errors import LoadError
from modeltool.formats import Format, describe
from modeltool.ir import Graph, Metadata, Model, Node, Signature, TensorSpec, Weight

TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16",
    8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64", 13: "resource",
    14: "variant", 15: "uint32", 16: "uint16", 17: "int4", 18: "bfloat16",
}  # fmt: skip


@contextmanager
def _mapped(path: str):
    with open(path, "rb") as fh:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield buf
        finally:
            buf.close()


def _op_names(tflite: Any) -> dict[int, str]:
    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _shape(t: Any) -> tuple:
    sig = t.ShapeSignatureAsNumpy() if t.ShapeSignatureLength() else None
    shape = t.ShapeAsNumpy() if t.ShapeLength() else []
    dims = sig if sig is not None and len(sig) == len(shape) else shape
    return tuple(None if int(d) < 0 else int(d) for d in dims)


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value else ""


def load(path: str, **options: Any) -> Model:
    tflite = require("tflite", "reading TFLite files")
    size = os.path.getsize(path)
    try:
        with _mapped(path) as buf:
            return _read(tflite, path, buf, size)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any flatbuffer decoding failure means a broken file
        raise LoadError(f"{path}: truncated or corrupted TFLite flatbuffer ({type(exc).__name__}: {exc})") from exc


def _read(tflite: Any, path: str, buf: Any, size: int) -> Model:
    model = tflite.Model.GetRootAsModel(buf, 0)
    names = _op_names(tflite)
    opcodes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        custom = _text(oc.CustomCode())
        opcodes.append(custom if custom else names.get(code, f"BUILTIN_{code}"))
    n_buffers = model.BuffersLength()
    if model.SubgraphsLength() == 0:
        raise LoadError(f"{path}: TFLite model has no subgraph")

    weights: list[Weight] = []
    graphs = []
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        tensors = [sg.Tensors(i) for i in range(sg.TensorsLength())]
        specs = []
        for ti, t in enumerate(tensors):
            dtype = TENSOR_TYPES.get(t.Type(), f"type{t.Type()}")
            specs.append(TensorSpec(_text(t.Name()) or f"t{ti}", _shape(t), dtype))
            b = t.Buffer()
            if 0 < b < n_buffers:
                buffer = model.Buffers(b)
                has = buffer.DataLength() > 0 or (buffer.Offset() > 1 and buffer.Size() > 0)
                if has:
                    q = _quant(t.Quantization())
                    w = Weight(specs[ti].name, None, "constant", tuple(d or 0 for d in specs[ti].shape),
                               dtype, True, _reader(path, b, dtype))  # fmt: skip
                    if q:
                        w.role = "quantized constant"
                    weights.append(w)
        weight_by_name = {w.name: w for w in weights}
        const_names = set(weight_by_name)
        nodes = []
        for oi in range(sg.OperatorsLength()):
            op = sg.Operators(oi)
            opname = opcodes[op.OpcodeIndex()] if op.OpcodeIndex() < len(opcodes) else "?"
            ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
            name = specs[outs[0]].name if outs else f"{opname}_{oi}"
            consts = [specs[i] for i in ins if i >= 0 and specs[i].name in const_names]
            params = sum(int(np.prod([d or 0 for d in c.shape])) for c in consts)
            node = Node(name, opname, {}, [[specs[i].name for i in ins if i >= 0 and specs[i].name not in const_names]],
                        [specs[i].shape for i in outs], params=params, trainable_params=0)  # fmt: skip
            if opname.startswith("Flex"):
                node.flags.append("flex")
            elif opname not in names.values():
                node.flags.append("custom")
            q = [_quant(tensors[i].Quantization()) for i in outs]
            if any(q):
                node.attrs["quantization"] = q
            nodes.append(node)
            for c in consts:
                w = weight_by_name[c.name]
                if w.layer is None:
                    w.layer = name
        inputs = [specs[i] for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
        outputs = [specs[i] for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
        graphs.append((Graph(nodes, inputs, outputs, "op", _text(sg.Name()) or f"subgraph_{s}"), specs))

    signatures = []
    for i in range(model.SignatureDefsLength()):
        sd = model.SignatureDefs(i)
        sub = graphs[sd.SubgraphIndex()][1] if sd.SubgraphIndex() < len(graphs) else graphs[0][1]
        ins = [_renamed(sub[sd.Inputs(j).TensorIndex()], sd.Inputs(j).Name()) for j in range(sd.InputsLength())]
        outs = [_renamed(sub[sd.Outputs(j).TensorIndex()], sd.Outputs(j).Name()) for j in range(sd.OutputsLength())]
        signatures.append(Signature(_text(sd.SignatureKey()), ins, outs))

    main = graphs[0][0]
    metadata_names = [_text(model.Metadata(i).Name()) for i in range(model.MetadataLength())]
    flex = sorted({n.op for g, _ in graphs for n in g.nodes if "flex" in n.flags})
    custom = sorted({n.op for g, _ in graphs for n in g.nodes if "custom" in n.flags})
    writer = {"schema_version": str(model.Version()), "description": _text(model.Description())}
    extra = {
        "subgraphs": [{"name": g.name, "ops": len(g.nodes), "tensors": len(sp)} for g, sp in graphs],
        "metadata": metadata_names,
        "flex_ops": flex,
        "custom_ops": custom,
        "quantized": any(w.dtype in ("int8", "uint8", "int16") for w in weights),
    }
    if len(graphs) > 1:
        main.nodes = [n for g, _ in graphs for n in g.nodes]
    meta = Metadata(Format.TFLITE, describe(Format.TFLITE), size, writer, None, extra)
    return Model(path, meta, main, weights, signatures)


def _renamed(spec: TensorSpec, name: bytes | None) -> TensorSpec:
    return TensorSpec(_text(name) or spec.name, spec.shape, spec.dtype)


def _quant(q: Any) -> dict[str, Any] | None:
    if q is None or q.ScaleLength() == 0:
        return None
    scale = q.ScaleAsNumpy()
    zero = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros_like(scale, dtype=np.int64)
    out: dict[str, Any] = {"scale": [float(x) for x in scale[:8]], "zero_point": [int(x) for x in zero[:8]]}
    if len(scale) > 1:
        out["per_channel"] = len(scale)
        out["axis"] = int(q.QuantizedDimension())
    return out


def _reader(path: str, buffer_index: int, dtype: str):
    def read():
        tflite = require("tflite")
        with _mapped(path) as buf:
            model = tflite.Model.GetRootAsModel(buf, 0)
            b = model.Buffers(buffer_index)
            if b.DataLength() > 0:
                raw = np.array(b.DataAsNumpy(), copy=True)
            else:
                raw = np.frombuffer(buf[b.Offset() : b.Offset() + b.Size()], dtype=np.uint8).copy()
        np_dtype = {"int4": "int8", "bfloat16": "uint16", "string": "uint8", "resource": "uint8",
                    "variant": "uint8"}.get(dtype, dtype)  # fmt: skip
        yield raw.view(np.dtype(np_dtype))

    return read
