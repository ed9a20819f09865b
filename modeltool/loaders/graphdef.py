"""Frozen TF GraphDefs (`.pb` binary, `.pbtxt` text): op-level graph, placeholders, constants.

Parsed with modeltool's own declaration of the GraphDef protobuf (no TensorFlow). Inputs are the
Placeholders and outputs the unconsumed compute nodes unless `inputs`/`outputs` name them.
"""

from __future__ import annotations

import os
from typing import Any

from modeltool.errors import LoadError
from modeltool.formats import Format, describe
from modeltool.ir import Metadata, Model
from modeltool.tfgraph import protos
from modeltool.tfgraph.graph import boundary, const_weights, op_graph, op_histogram, parse_io

#: a GraphDef over this size is still read (protobuf's own limit is 2 GB), but is worth saying
MAX_GRAPHDEF_BYTES = 2 * 1024**3


def read_graph_def(path: str) -> Any:
    """The GraphDef message of a .pb or .pbtxt file; LoadError when it is not one."""
    size = os.path.getsize(path)
    if size > MAX_GRAPHDEF_BYTES:
        raise LoadError(f"{path}: {size} bytes is over protobuf's 2 GB limit for a GraphDef")
    with open(path, "rb") as fh:
        data = fh.read()
    head = data[:64].lstrip()
    try:
        if head.startswith(b"node") or head.startswith(b"versions") or head.startswith(b"library"):
            from google.protobuf import text_format

            graph_def = protos.new("GraphDef")
            text_format.Parse(data.decode("utf-8"), graph_def, allow_unknown_field=True)
        else:
            graph_def = protos.parse("GraphDef", data)
    except Exception as exc:  # noqa: BLE001 - DecodeError / ParseError / UnicodeDecodeError
        raise LoadError(f"{path}: not a valid GraphDef protobuf ({' '.join(str(exc).split())[:160]})") from exc
    if not graph_def.node:
        raise LoadError(f"{path}: not a GraphDef (no nodes parsed)")
    if any(not n.op for n in graph_def.node):
        raise LoadError(f"{path}: not a GraphDef (nodes without an op type)")
    return graph_def


def load(path: str, *, inputs: Any = None, outputs: Any = None, **options: Any) -> Model:
    graph_def = read_graph_def(path)
    ins, outs, boundary_notes = boundary(graph_def, parse_io(inputs, "inputs"), parse_io(outputs, "outputs"), path)
    graph = op_graph(graph_def, ins, outs, os.path.basename(path))
    weights = const_weights(graph_def)
    extra = {
        "op_histogram": op_histogram(graph_def.node),
        "nodes": len(graph_def.node),
        "functions": len(graph_def.library.function),
    }
    warnings = list(boundary_notes)
    if not outs:
        warnings.append("no output detected (every node is consumed or bookkeeping); name them with --outputs")
    if not inputs and not ins:
        warnings.append("no Placeholder in the graph; name the inputs with --inputs")
    meta = Metadata(
        format=Format.GRAPHDEF,
        format_description=describe(Format.GRAPHDEF),
        file_size=os.path.getsize(path),
        writer={"graph_producer": str(graph_def.versions.producer)} if graph_def.versions.producer else {},
        extra=extra,
    )
    model = Model(path, meta, graph, weights, [], warnings)
    return model
